"""The stream app's librdkafka producer on the real broker: what it hands over arrives, and a
message Kafka refuses makes every later flush raise, so faust never commits past it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from schemas.config import Settings
from schemas.topics import TopicSpec, create_topics
from streams.output_producer import DeliveryFailed, OutputProducer


@pytest.fixture
def topic(settings: Settings):  # type: ignore[no-untyped-def]
    name = f"test-output-producer-{uuid.uuid4().hex[:8]}"
    create_topics(settings.client, [TopicSpec(name, 1, 1)])
    yield name
    AdminClient(settings.client.librdkafka()).delete_topics([name])


def test_delivered_messages_arrive_in_order(settings: Settings, topic: str) -> None:
    failures: list[str] = []
    delivered: list[int] = []
    producer = OutputProducer(settings.client, failures.append)

    async def publish() -> None:
        for number in range(50):
            await producer.send(topic, b"key", str(number).encode(),
                                on_delivered=lambda _t, _p, offset: delivered.append(offset))
        await producer.flush()

    asyncio.run(publish())
    assert failures == [] and delivered == list(range(50))
    consumer = Consumer(settings.client.librdkafka(
        {"group.id": topic, "enable.auto.commit": False}
    ))
    consumer.assign([TopicPartition(topic, 0, 0)])
    values = [message.value() for message in consumer.consume(50, timeout=10)]
    consumer.close()
    assert values == [str(number).encode() for number in range(50)]


def test_a_refused_message_makes_every_later_flush_raise(settings: Settings, topic: str) -> None:
    failures: list[str] = []
    producer = OutputProducer(settings.client, failures.append)

    async def publish() -> None:
        await producer.send(topic, b"key", b"fine")
        await producer.send(topic, b"key", b"lost", partition=7)  # the topic has 1 partition
        with pytest.raises(DeliveryFailed, match=rf"{topic}\[7\].*not committed"):
            await producer.flush()
        await producer.send(topic, b"key", b"after")
        with pytest.raises(DeliveryFailed):  # the failure is not forgotten
            await producer.flush()

    asyncio.run(publish())
    assert len(failures) == 1 and failures[0].startswith(
        f"a message could not be delivered to Kafka ({topic}[7]")
