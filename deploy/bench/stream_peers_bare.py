"""The bare peer of ``bench stream --peers``: ingest's decode, check and forward
(``deploy.bench.stream_peers_work``) in a plain confluent-kafka consume-process-produce loop,
no stream engine. Run as a process of its own by the benchmark::

    python -m deploy.bench.stream_peers_bare --topic-root R --input T --output O \\
        --changelog C --group G

At-least-once, as an engine would do it: offsets are stored by hand and committed only after
the producer has flushed everything the batch sent (outputs and changelog messages). The held
entries live in a dict, each change also written to a compacted changelog topic keyed as
faust's table keys it, on the input's partition. The client settings (SASL_SSL, SCRAM, the
CA) are tipsync's own (its settings and client file), as for every command. Stops at
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer

from deploy.bench.stream_peers_work import IngestWork
from schemas.config import load_settings
from schemas.registry import SchemaRegistry
from schemas.serde import AvroDeserializer
from schemas.topics import TopicNames

BATCH = 1_000  # messages taken per consume call


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stream_peers_bare")
    for name in ("--topic-root", "--input", "--output", "--changelog", "--group"):
        parser.add_argument(name, required=True)
    return parser.parse_args(argv)


def produce(producer: Producer, topic: str, key: bytes, value: bytes,
            partition: int = -1) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value, partition=partition)
            return
        except BufferError:
            producer.poll(0.05)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    settings = load_settings()
    registry = SchemaRegistry(settings.client.registry())
    work = IngestWork(AvroDeserializer(registry), TopicNames(args.topic_root))
    consumer = Consumer(settings.client.librdkafka({
        "group.id": args.group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
    }))
    producer = Producer(settings.client.librdkafka({
        "acks": "all", "enable.idempotence": True, "linger.ms": 5,
    }))
    held: dict[str, Any] = {}
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    consumer.subscribe([args.input])
    try:
        while not stopping:
            messages = consumer.consume(BATCH, timeout=0.5)
            if not messages:
                continue
            for message in messages:
                if message.error():
                    raise KafkaException(message.error())
                topic, partition = str(message.topic()), int(message.partition() or 0)
                key = message.key()
                forward = work(topic, key if isinstance(key, bytes) else None,
                               message.value(), held.get)
                if forward is None:
                    continue
                held[forward.held_key] = forward.held_json
                produce(producer, args.output, forward.key, forward.value)
                changelog_key, changelog_value = forward.changelog()
                produce(producer, args.changelog, changelog_key, changelog_value, partition)
            remaining = producer.flush(60)
            if remaining:
                raise RuntimeError(f"{remaining} messages to {args.output} were not "
                                   "acknowledged by Kafka in 60 s; the batch is not committed")
            consumer.commit(asynchronous=False)  # only now: at-least-once
    finally:
        consumer.close()
        registry.close()
    print(f"bare loop: {work.tally.as_dict()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
