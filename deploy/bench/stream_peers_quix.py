"""The quix-streams peer of ``bench stream --peers``: ingest's decode, check and forward
(``deploy.bench.stream_peers_work``) as a quix-streams application.

It runs in a virtual environment of its own (``quix-venv`` in the cache folder, made by the
benchmark on first use: ``deploy.bench.stream_peers_env``), never in tipsync's; the benchmark
starts it as::

    <quix-venv>/bin/python -m deploy.bench.stream_peers_quix --topic-root R --input T \\
        --output O --group G --state-dir D

with tipsync's folder on ``PYTHONPATH`` and tipsync's settings in the environment.

- **Connection**: quix-streams is built on confluent-kafka (librdkafka), so SASL_SSL with
  SCRAM and the stack's CA are the same librdkafka properties tipsync's client file holds;
  ``ConnectionConfig.from_librdkafka_dict`` takes them (the password stays in memory, from
  the file; quix-streams keeps it as a pydantic ``SecretStr``).
- **Decoding**: values are read as bytes and decoded by tipsync's ``AvroDeserializer`` (over
  the registry's TLS and basic authentication, as every tipsync client), so that the three
  engines run the same decode and check. quix-streams' own ``AvroDeserializer`` can do it
  too (tried once by hand against the stack's Apicurio, ``/apis/ccompat/v7``: it decoded a
  person event to the same record): its ``SchemaRegistryClientConfig`` takes the URL,
  ``ssl_ca_location`` and ``basic_auth_user_info`` and hands them to confluent-kafka's
  ``SchemaRegistryClient`` (quix-streams requires it with its registry extras; fastavro, its
  ``avro`` extra, is in the benchmark's environment). It skips tipsync's check of the record
  type, so it is not used here.
- **State**: the held entry of each record is quix-streams' per-key state (RocksDB, with the
  changelog topic quix-streams creates: ``changelog__<group>--<input>--default``).
- **Delivery**: ``processing_guarantee="at-least-once"`` (its default): quix-streams flushes
  the producer, then commits, every ``commit_interval`` (its default, 5 s).

Stops at SIGTERM (quix-streams' own handler).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from deploy.bench.stream_peers_work import Forward, IngestWork
from schemas.config import load_settings
from schemas.registry import SchemaRegistry
from schemas.serde import AvroDeserializer
from schemas.topics import TopicNames

HELD = "held"  # the state key of the held entry (the state itself is per message key)


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stream_peers_quix")
    for name in ("--topic-root", "--input", "--output", "--group", "--state-dir"):
        parser.add_argument(name, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from quixstreams import Application  # type: ignore[import-not-found]
    from quixstreams.kafka.configuration import (  # type: ignore[import-not-found]
        ConnectionConfig,
    )
    from quixstreams.models.serializers.base import Serializer  # type: ignore[import-not-found]

    class ForwardValue(Serializer):  # type: ignore[misc]
        """The output's value: the agency event's bytes, as ingest forwards them."""

        def __call__(self, value: Forward, ctx: Any) -> bytes:
            return value.value

    args = arguments(argv)
    settings = load_settings()
    registry = SchemaRegistry(settings.client.registry())
    work = IngestWork(AvroDeserializer(registry), TopicNames(args.topic_root))
    app = Application(
        # strict: a client-file property quix-streams does not model fails here, loudly,
        # rather than being dropped (the stack's file: bootstrap, protocol, SCRAM, CA)
        broker_address=ConnectionConfig.from_librdkafka_dict(settings.client.librdkafka()),
        consumer_group=args.group, auto_offset_reset="earliest",
        processing_guarantee="at-least-once", state_dir=args.state_dir, loglevel="WARNING",
    )
    source = app.topic(args.input, key_deserializer="bytes", value_deserializer="bytes")
    output = app.topic(args.output, key_serializer="bytes", value_serializer=ForwardValue())

    def ingest(value: bytes | None, key: bytes | None, _timestamp: int, _headers: Any,
               state: Any) -> Forward | None:
        forward = work(args.input, key, value, lambda _held_key: state.get(HELD))
        if forward is not None:
            state.set(HELD, forward.held_json)
        return forward

    frame = app.dataframe(source)
    frame = frame.apply(ingest, stateful=True, metadata=True)
    frame = frame.filter(lambda forward: forward is not None)
    frame.to_topic(output, key=lambda forward: forward.key)
    try:
        app.run()
    finally:
        registry.close()
    print(f"quix-streams: {work.tally.as_dict()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
