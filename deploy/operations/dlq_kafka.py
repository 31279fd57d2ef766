"""Reading dead-letter topics and publishing replays: the Kafka shell of ``tipsync dlq``.

The reader assigns partitions by hand and commits nothing (the ``group.id`` the client
requires is never joined), so it needs READ on ``tip.dlq.*`` and no group right, and reading
disturbs no one. The replay producer is idempotent with ``acks=all``: a message is published
once per replay, in the order of its dead-letter topic.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import Message as KafkaMessage

from deploy.operations.dlq import DeadLetterError, DeadLetterId, Message
from deploy.operations.topic_reader import TopicReadError, group_lookup_refused, read_to_end
from schemas.client_config import ClientConfig
from schemas.topics import TopicNames

TIMEOUT_SECONDS = 30.0


def _consumer(client: ClientConfig) -> Consumer:
    return Consumer(client.librdkafka({
        # required by the client, never joined: partitions are assigned by hand
        "group.id": f"tipsync-dlq-reader-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
    }))


def _bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _message(kafka: KafkaMessage) -> Message:
    _, timestamp = kafka.timestamp()
    return Message(
        partition=kafka.partition() or 0, offset=kafka.offset() or 0,
        timestamp_ms=int(timestamp or 0), key=_bytes(kafka.key()), value=_bytes(kafka.value()),
        headers=tuple((str(pair[0]), _bytes(pair[1]) or b"") for pair in kafka.headers() or []),
    )


def _refused(topic: str, error: KafkaError) -> DeadLetterError:
    if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        return DeadLetterError(
            f"Kafka refused to let this principal read {topic} ({error.name()}); run `tipsync"
            " dlq` as the operator principal (its default) or another with READ on the"
            " dead-letter topics (docs/SECURITY.md)"
        )
    return DeadLetterError(f"reading {topic} failed ({error.str()}); check `tipsync stack"
                           " status` or the cluster")


def read_dead_letters(client: ClientConfig, names: TopicNames, stage: str) -> list[Message]:
    """Every message of ``tip.dlq.<stage>`` up to each partition's end now."""
    topic = names.dlq(stage)
    consumer = _consumer(client)
    try:
        return list(_read_all(consumer, topic))
    except KafkaException as error:
        raise DeadLetterError(f"reading {topic} failed ({error.args[0].str()}); check"
                              " `tipsync stack status` or the cluster, then try again") from None
    finally:
        consumer.close()


def _read_all(consumer: Consumer, topic: str) -> Iterator[Message]:
    metadata = consumer.list_topics(topic, timeout=TIMEOUT_SECONDS)
    described = metadata.topics.get(topic)
    if described is None or described.error is not None:
        if described is not None and described.error is not None and \
                described.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise _refused(topic, described.error)
        raise DeadLetterError(
            f"there is no topic {topic}; create the pipeline's topics (`tipsync topics"
            " create`) or give the right --topic-root"
        )
    try:
        for kafka in read_to_end(consumer, topic, described.partitions, TIMEOUT_SECONDS):
            yield _message(kafka)
    except TopicReadError as error:
        if error.error is None:
            raise DeadLetterError(f"{topic} gave nothing for {TIMEOUT_SECONDS:.0f} s while"
                                  " messages remained to read; check the cluster") from None
        raise _refused(topic, error.error) from None


def read_dead_letter(client: ClientConfig, names: TopicNames, letter: DeadLetterId) -> Message:
    """The message at ``letter``'s place; DeadLetterError when there is none any more."""
    topic = names.dlq(letter.stage)
    consumer = _consumer(client)
    gone = DeadLetterError(
        f"there is no dead letter {letter} on {topic}: retention, compaction or an erasure"
        " removed it, or the ID is wrong (`tipsync dlq list` shows the ones there are)"
    )
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, letter.partition),
                                                   timeout=TIMEOUT_SECONDS)
        if not low <= letter.offset < high:
            raise gone
        consumer.assign([TopicPartition(topic, letter.partition, letter.offset)])
        while True:
            kafka = consumer.poll(TIMEOUT_SECONDS)
            if kafka is None:
                raise DeadLetterError(f"{topic} gave nothing for {TIMEOUT_SECONDS:.0f} s")
            error = kafka.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    raise gone
                if group_lookup_refused(error):
                    continue
                raise _refused(topic, error)
            if kafka.offset() != letter.offset:
                raise gone  # compacted away: the next one was returned
            return _message(kafka)
    except DeadLetterError:
        raise
    except Exception as error:  # noqa: BLE001 - KafkaException: an unknown topic, partition
        raise DeadLetterError(f"reading {topic} failed ({error}); check the ID"
                              " and --topic-root") from None
    finally:
        consumer.close()


def publish(client: ClientConfig, messages: Sequence[tuple[str, int | None, Message]]
            ) -> list[tuple[int, int]]:
    """Publish each (topic, partition, message)'s key and value bytes unchanged, without the
    dead-letter headers, to the partition it was read from when known (the producer that
    wrote it may have hashed keys differently; its other changes are in that partition, in
    order); returns the (partition, offset) each got, in order. DeadLetterError when Kafka
    refuses one (the ones before it are published: the caller's audit says which)."""
    producer = Producer(client.librdkafka({"acks": "all", "enable.idempotence": True}))
    placed: list[tuple[int, int] | None] = [None] * len(messages)
    failures: list[str] = []

    def delivered(index: int, topic: str):  # type: ignore[no-untyped-def]
        def report(error: KafkaError | None, kafka: KafkaMessage) -> None:
            if error is not None:
                failures.append(f"{topic}: {error.str()}")
            else:
                placed[index] = (kafka.partition() or 0, kafka.offset() or 0)
        return report

    for index, (topic, partition, message) in enumerate(messages):
        while True:
            try:
                producer.produce(topic, key=message.key, value=message.value,
                                 partition=-1 if partition is None else partition,
                                 on_delivery=delivered(index, topic))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(TIMEOUT_SECONDS * 2)
    if failures or remaining:
        raise DeadLetterError(
            f"Kafka did not take {len(failures) + remaining} replayed message(s) ("
            + "; ".join(failures[:3]) + "); the operator principal needs WRITE on the"
            " stage inputs (docs/SECURITY.md); the audit shows which were published"
        )
    return [place for place in placed if place is not None]
