"""The stream app's producer gathers its outputs while the worker is behind its input, and
hands each one over at once when it is not (streams/output_producer.py): order kept, nothing
left behind by a flush. librdkafka is the stand-in of test_output_producer_flush.py."""

from __future__ import annotations

import asyncio

import pytest

from streams import output_producer
from streams.output_producer import GATHER_BEHIND_SECONDS, GATHER_SECONDS, OutputProducer
from tests.unit.streams.test_output_producer_flush import _Librdkafka

Producer = tuple[OutputProducer, _Librdkafka, list[str]]


@pytest.fixture
def producer() -> Producer:
    failures: list[str] = []
    output = OutputProducer("127.0.0.1:1", failures.append)
    fake = _Librdkafka()
    output._producer = fake  # type: ignore[assignment]
    return output, fake, failures


def handed(fake: _Librdkafka) -> list[bytes]:
    return [message.value() for message, _ in fake.held]


def test_a_worker_that_keeps_up_hands_each_message_over_at_once(producer: Producer) -> None:
    output, fake, _ = producer

    async def run() -> None:
        output.behind(GATHER_BEHIND_SECONDS / 2)
        await output.send("t", None, b"1")
        assert handed(fake) == [b"1"]

    asyncio.run(run())


def test_a_worker_behind_its_input_hands_its_outputs_over_together_after_a_while(
    producer: Producer,
) -> None:
    output, fake, _ = producer

    async def run() -> None:
        output.behind(GATHER_BEHIND_SECONDS + 5)
        for value in (b"1", b"2", b"3"):
            await output.send("t", None, value)
        assert handed(fake) == []
        await asyncio.sleep(GATHER_SECONDS * 1.5)  # no further send: the timer hands over
        assert handed(fake) == [b"1", b"2", b"3"]
        await output.send("t", None, b"4")
        assert handed(fake) == [b"1", b"2", b"3"]  # a new gathering

    asyncio.run(run())


def test_catching_up_hands_the_gathered_over_before_anything_sent_after(
    producer: Producer,
) -> None:
    output, fake, _ = producer

    async def run() -> None:
        output.behind(GATHER_BEHIND_SECONDS)
        await output.send("t", None, b"1")
        await output.send("t", None, b"2")
        output.behind(0.0)
        assert handed(fake) == [b"1", b"2"]
        await output.send("t", None, b"3")
        assert handed(fake) == [b"1", b"2", b"3"]

    asyncio.run(run())


def test_a_flush_hands_over_what_was_gathered_and_waits_for_it(producer: Producer) -> None:
    # faust flushes before it commits: an input's outputs may not wait in the gathering then
    output, fake, _ = producer

    async def run() -> None:
        output.behind(GATHER_BEHIND_SECONDS + 1)
        await output.send("t", None, b"1")
        await output.send("t", None, b"2")
        flush = asyncio.create_task(output.flush())
        await asyncio.sleep(0.01)
        assert handed(fake) == [b"1", b"2"] and not flush.done()
        fake.acknowledge(b"1")
        fake.acknowledge(b"2")
        await asyncio.wait_for(flush, timeout=1)

    asyncio.run(run())


def test_a_full_local_queue_keeps_the_rest_gathered_in_order(producer: Producer) -> None:
    output, fake, _ = producer

    async def run() -> None:
        output.behind(GATHER_BEHIND_SECONDS + 1)
        await output.send("t", None, b"1")
        await output.send("t", None, b"2")
        fake.full = True
        output.behind(0.0)  # caught up, but librdkafka has no room
        assert handed(fake) == []
        sending = asyncio.create_task(output.send("t", None, b"3"))  # waits behind 1 and 2
        await asyncio.sleep(0.01)
        assert not sending.done()
        fake.full = False
        await asyncio.wait_for(sending, timeout=1)
        assert handed(fake) == [b"1", b"2", b"3"]

    asyncio.run(run())


def test_a_large_gathering_is_handed_over_without_waiting_for_the_time(
    producer: Producer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(output_producer, "GATHER_MAX_MESSAGES", 3)
    output, fake, _ = producer

    async def run() -> None:
        output.behind(GATHER_BEHIND_SECONDS + 1)
        for value in (b"1", b"2", b"3", b"4"):
            await output.send("t", None, value)
        assert handed(fake) == [b"1", b"2", b"3"]

    asyncio.run(run())
