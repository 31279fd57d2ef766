"""What a flush of the stream app's producer waits for: the messages handed over before it,
not those handed over while it waits (faust takes the offsets it commits before it flushes).

librdkafka is replaced by a stand-in that keeps each message until the test acknowledges it;
tests/integration/test_output_producer.py runs the producer against the real broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from streams.output_producer import DeliveryFailed, OutputProducer


class _Message:
    def __init__(self, topic: str, value: bytes) -> None:
        self._topic, self._value = topic, value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return int(self._value)

    def value(self) -> bytes:
        return self._value


class _Librdkafka:
    """Holds messages until ``acknowledge``; ``poll`` reports the acknowledged ones."""

    def __init__(self) -> None:
        self.held: list[tuple[_Message, Callable[[Any, Any], None]]] = []
        self.ready: list[tuple[Any, _Message, Callable[[Any, Any], None]]] = []
        self.full = False

    def produce(self, topic: str, *, on_delivery: Callable[[Any, Any], None],
                key: bytes | None, value: bytes, **_: Any) -> None:
        if self.full:
            raise BufferError("queue full")
        self.held.append((_Message(topic, value), on_delivery))

    def acknowledge(self, value: bytes, error: str | None = None) -> None:
        for index, (message, report) in enumerate(self.held):
            if message.value() == value:
                del self.held[index]
                self.ready.append((error, message, report))
                return
        raise AssertionError(f"{value!r} is not in flight")

    def poll(self, _timeout: float) -> int:
        ready, self.ready = self.ready, []
        for error, message, report in ready:
            report(error, message)
        return len(ready)

    def __len__(self) -> int:
        return len(self.held) + len(self.ready)


@pytest.fixture
def producer() -> tuple[OutputProducer, _Librdkafka, list[str]]:
    failures: list[str] = []
    output = OutputProducer("127.0.0.1:1", failures.append)
    fake = _Librdkafka()
    output._producer = fake  # type: ignore[assignment]
    return output, fake, failures


def test_a_flush_returns_once_what_came_before_it_is_acknowledged_though_more_is_in_flight(
    producer: tuple[OutputProducer, _Librdkafka, list[str]],
) -> None:
    output, fake, _ = producer
    delivered: list[int] = []

    async def run() -> None:
        for value in (b"1", b"2"):
            await output.send("t", None, value, on_delivered=lambda _t, _p, o: delivered.append(o))
        flush = asyncio.create_task(output.flush())
        await asyncio.sleep(0.01)
        await output.send("t", None, b"3")  # after the flush began: not waited for
        fake.acknowledge(b"2")
        await asyncio.sleep(0.01)
        assert not flush.done()  # b"1" is still in flight
        fake.acknowledge(b"1")
        await asyncio.wait_for(flush, timeout=1)
        assert len(fake) == 1  # b"3", handed over during the flush, still in flight
        fake.acknowledge(b"3")
        await asyncio.wait_for(output.flush(), timeout=1)

    asyncio.run(run())
    assert sorted(delivered) == [1, 2]


def test_a_message_that_waited_for_room_during_a_flush_is_left_to_the_next_flush(
    producer: tuple[OutputProducer, _Librdkafka, list[str]],
) -> None:
    output, fake, _ = producer

    async def run() -> None:
        await output.send("t", None, b"1")
        fake.full = True
        blocked = asyncio.create_task(output.send("t", None, b"2"))
        await asyncio.sleep(0.01)
        flush = asyncio.create_task(output.flush())
        await asyncio.sleep(0.01)
        fake.full = False
        await asyncio.wait_for(blocked, timeout=1)
        fake.acknowledge(b"1")
        await asyncio.wait_for(flush, timeout=1)  # b"2" was handed over after it began
        second = asyncio.create_task(output.flush())
        await asyncio.sleep(0.01)
        assert not second.done()
        fake.acknowledge(b"2")
        await asyncio.wait_for(second, timeout=1)

    asyncio.run(run())


def test_a_refused_message_before_the_flush_makes_it_and_every_later_flush_raise(
    producer: tuple[OutputProducer, _Librdkafka, list[str]],
) -> None:
    output, fake, failures = producer

    async def run() -> None:
        await output.send("t", None, b"1")
        fake.acknowledge(b"1", error="MSG_SIZE_TOO_LARGE")
        with pytest.raises(DeliveryFailed, match=r"t\[0\]: MSG_SIZE_TOO_LARGE"):
            await output.flush()
        await output.send("t", None, b"2")
        fake.acknowledge(b"2")
        with pytest.raises(DeliveryFailed):
            await output.flush()

    asyncio.run(run())
    assert failures == ["a message could not be delivered to Kafka (t[0]: MSG_SIZE_TOO_LARGE)"]


def test_commits_held_for_an_unfinished_input_make_every_flush_raise(
    producer: tuple[OutputProducer, _Librdkafka, list[str]],
) -> None:
    # streams.agent_guard: faust flushes before it commits, so it commits nothing more
    output, fake, failures = producer

    async def run() -> None:
        output.hold_commits("ingest could not finish a[0]@5 (KafkaException)")
        with pytest.raises(DeliveryFailed, match=r"a\[0\]@5 .*not committed"):
            await output.flush()
        output.hold_commits("a second reason")  # the first one is kept
        with pytest.raises(DeliveryFailed, match=r"a\[0\]@5"):
            await output.flush()

    asyncio.run(run())
    assert failures == []  # holding is not a delivery failure: the guard stops the worker
