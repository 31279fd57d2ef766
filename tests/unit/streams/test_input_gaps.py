"""Ingest processes every message of a partition at least once, whatever faust hands over
(``streams.input_gaps``): faust 0.15.3 can skip messages after a rebalance and commit past
them, or hand a message twice. Without faust or Kafka: the topic is a list of messages."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from faust.types import TP

from schemas.examples import example_uuid
from streams.ingest import entity_golden_id
from streams.input_gaps import (
    ContiguousInput,
    FaustAcknowledger,
    Partition,
    PartitionBooks,
    SeekUncommittedToStart,
    TailWatch,
)
from tests.unit.streams.test_ingest_handler import (
    TOPICS,
    Message,
    _handler,
    _message,
)

CASES = TOPICS.agency("police-ctu", "case")
FAUST_TP = TP(CASES, 0)


class Topic:
    """One partition's messages by offset, the group's committed offset, and the reads."""

    def __init__(self, messages: Sequence[Message], committed: int) -> None:
        self.messages = {message.offset: message for message in messages}
        self.committed = committed
        self.reads: list[tuple[Partition, int, int]] = []
        self.starts = 0

    async def start(self, partition: Partition) -> int:
        self.starts += 1
        return self.committed

    async def read(self, partition: Partition, begin: int, end: int) -> list[Message]:
        self.reads.append((partition, begin, end))
        return [self.messages[offset] for offset in range(begin, end)
                if offset in self.messages]


def _cases(count: int) -> list[Message]:
    return [_message("case", f"C-{offset}", offset, event_id=example_uuid(f"c{offset}"))
            for offset in range(count)]


def _published(sent: list[dict[str, object]]) -> list[bytes]:
    return [message["key"] for message in sent  # type: ignore[misc]
            if message["topic"] == TOPICS.reconciled("case")]


def test_messages_faust_skipped_are_read_from_the_topic_and_ingested_first_in_order() -> None:
    """The skip seen in faust's fetcher: after the seek to the committed offset (2), a batch
    fetched before it hands offset 6 first, and 2-5 are dropped as already read."""
    messages = _cases(8)
    topic = Topic(messages, committed=2)
    handler, _, sent, _ = _handler()
    handler.contiguous = ContiguousInput(topic.start, topic.read, "ingest")
    for offset in (6, 7):
        asyncio.run(handler.ingest_one(messages[offset]))

    assert topic.reads == [((CASES, 2), 2, 6)]
    assert _published(sent) == [entity_golden_id("case", "police-ctu", f"C-{offset}").encode()
                                for offset in range(2, 8)]
    assert handler.contiguous.reread == 4
    assert handler.contiguous.next_offset == {(CASES, 2): 8}


def test_a_message_handed_again_in_the_same_assignment_is_passed_over() -> None:
    messages = _cases(4)
    topic = Topic(messages, committed=0)
    handler, _, sent, _ = _handler()
    handler.contiguous = ContiguousInput(topic.start, topic.read, "ingest")
    for offset in (0, 1, 2, 1, 2, 3):  # a second seek back to offset 1
        asyncio.run(handler.ingest_one(messages[offset]))
    assert len(_published(sent)) == 4
    assert topic.reads == [] and topic.starts == 1


def test_after_a_revoke_the_partition_starts_again_at_the_committed_offset() -> None:
    """Another worker may have had the partition meanwhile: what it committed is where this
    one goes on, and what lies between that and the first message handed is read."""
    messages = _cases(6)
    topic = Topic(messages, committed=0)
    handler, _, sent, _ = _handler()
    contiguous = handler.contiguous = ContiguousInput(topic.start, topic.read, "ingest")
    asyncio.run(handler.ingest_one(messages[0]))
    contiguous.forget([(CASES, 2)])
    topic.committed = 3
    asyncio.run(handler.ingest_one(messages[5]))
    assert topic.starts == 2
    assert topic.reads == [((CASES, 2), 3, 5)]
    assert len(_published(sent)) == 4  # offsets 0, then 3, 4 (read) and 5


def test_offsets_without_messages_read_nothing_and_the_stream_goes_on() -> None:
    messages = [message for message in _cases(5) if message.offset != 2]
    topic = Topic(messages, committed=0)
    contiguous = ContiguousInput(topic.start, topic.read, "ingest")
    taken = [asyncio.run(contiguous.take(message)) for message in messages]
    assert taken == [(), (), [], ()]
    assert contiguous.reread == 0


def _faust_books(committed: int) -> Any:
    """faust 0.15.3's consumer bookkeeping of one partition, without a broker: the real
    ``_add_gap``, ``ack`` bookkeeping and ``_new_offset`` of its aiokafka driver's consumer."""
    from collections import defaultdict

    from faust.transport.drivers.aiokafka import Consumer
    from intervaltree import IntervalTree

    books = Consumer.__new__(Consumer)
    books._acked = defaultdict(list)
    books._acked_index = defaultdict(set)
    books._gap = defaultdict(IntervalTree)
    books._committed_offset = defaultdict(lambda: None)
    books._committed_offset[FAUST_TP] = committed
    return books


def test_faust_never_commits_past_offsets_it_did_not_hand_until_they_are_acknowledged() -> None:
    """The stalled worker (docs/OPERATIONS.md): after a restart's rebalance faust handed a
    partition's offset 12 first while its committed offset was 10, without recording 10-11
    as a gap; its ``_new_offset`` then refuses to commit (``min(acked) - committed > 1``), so
    the lag stays for ever. Once the messages read past faust are processed, recording them
    as a gap (``FaustAcknowledger``) lets the commit go on to 13."""
    books = _faust_books(committed=10)
    books._acked[FAUST_TP].append(12)
    books._acked_index[FAUST_TP].add(12)
    assert books._new_offset(FAUST_TP) is None  # stuck: what the worker saw

    acknowledge = FaustAcknowledger(lambda: books)
    asyncio.run(acknowledge((FAUST_TP.topic, FAUST_TP.partition), 10, 12))
    assert books._new_offset(FAUST_TP) == 13


def test_the_ingest_guard_acknowledges_what_it_read_once_processed() -> None:
    messages = _cases(6)
    topic = Topic(messages, committed=2)
    acknowledged: list[tuple[Partition, int, int]] = []

    async def acknowledge(partition: Partition, first: int, until: int) -> None:
        acknowledged.append((partition, first, until))

    handler, _, _, _ = _handler()
    handler.contiguous = ContiguousInput(topic.start, topic.read, "ingest", acknowledge)
    for offset in (4, 5):
        asyncio.run(handler.ingest_one(messages[offset]))
    assert acknowledged == [((CASES, 2), 2, 4)]


class _AiokafkaAssigned:
    """What aiokafka's ``seek_to_committed`` uses of its consumer: the group's committed
    offsets and the fetcher's seeks."""

    def __init__(self, committed: dict[Any, int | None]) -> None:
        self._committed = committed
        self._subscription = self
        self._fetcher = self
        self.sought: list[tuple[Any, int]] = []

    def assigned_partitions(self) -> set[Any]:
        return set(self._committed)

    async def committed(self, tp: Any) -> int | None:
        return self._committed[tp]

    def seek_to(self, tp: Any, offset: int) -> None:
        self.sought.append((tp, offset))


def test_aiokafka_seeks_back_only_partitions_committed_above_zero() -> None:
    """The library behaviour the fix is for (aiokafka 0.12, ``AIOKafkaConsumer
    .seek_to_committed``, which faust's seek after every rebalance uses): a partition the
    group never committed, or committed at 0, is not sought, so records fetched and dropped
    meanwhile are never fetched again."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    never, zero, five = (TopicPartition(CASES, partition) for partition in range(3))
    consumer = _AiokafkaAssigned({never: None, zero: 0, five: 5})
    committed = asyncio.run(AIOKafkaConsumer.seek_to_committed(consumer))  # type: ignore[arg-type]
    assert committed == {never: None, zero: 0, five: 5}
    assert consumer.sought == [(five, 5)]


def test_partitions_never_committed_are_sought_to_their_start_after_faust_seeks() -> None:
    """The stalled worker of the fault suite: the seek that ends a rebalance leaves input
    partitions without a committed offset past records faust dropped; they are sought to
    their first offset (changelog partitions are left to faust's table recovery)."""
    from aiokafka import TopicPartition

    changelog = "tip.internal.stream-ingest_held-changelog"
    never, zero, five = (TopicPartition(CASES, partition) for partition in range(3))
    table = TopicPartition(changelog, 0)
    calls: list[str] = []
    to_beginning: list[tuple[Any, ...]] = []

    async def seek_to_committed() -> dict[Any, int | None]:
        calls.append("committed")
        return {five: 5, zero: 0, never: None, table: None}

    async def seek_to_beginning(*partitions: Any) -> None:
        calls.append("beginning")
        to_beginning.append(partitions)

    seek = SeekUncommittedToStart(seek_to_committed, seek_to_beginning, lambda: {changelog})
    committed = asyncio.run(seek())
    assert committed == {five: 5, zero: 0, never: None, table: None}  # what faust gets
    assert calls == ["committed", "beginning"]
    assert to_beginning == [(never, zero)]
    assert seek.sought == 2


def test_the_completed_seek_replaces_the_one_faust_calls() -> None:
    class FaustConsumer:
        def __init__(self) -> None:
            self._thread = self
            self.to_beginning: list[Any] = []

        async def seek_to_committed(self) -> dict[Any, int | None]:
            return {FAUST_TP: None}

        async def seek_to_beginning(self, *partitions: Any) -> None:
            self.to_beginning.extend(partitions)

        async def perform_seek(self) -> None:  # faust's, in short
            await self.seek_to_committed()

    consumer = FaustConsumer()
    SeekUncommittedToStart.install(consumer, lambda: set())
    asyncio.run(consumer.perform_seek())
    assert consumer.to_beginning == [FAUST_TP]


def _books(committed: int | None, end: int | None, pending: bool = False) -> dict[
        Partition, PartitionBooks]:
    return {(CASES, 1): PartitionBooks(committed=committed, end=end, pending=pending)}


def test_a_tail_faust_never_handed_is_taken_up_after_three_looks_without_a_change() -> None:
    """Seen on the real stack (tipsync stream --workers 2, a new agency's only message):
    faust's read offset at 0, the partition's end at 1, nothing acknowledged, nothing
    committed, for minutes. No later message comes for ``ContiguousInput`` to notice."""
    watch = TailWatch(patience=3)
    assert watch.look(_books(None, 1)) == []
    assert watch.look(_books(None, 1)) == []
    assert watch.look(_books(None, 1)) == [(CASES, 1)]
    assert watch.taken_up == 1


def test_a_partition_that_moves_or_has_messages_in_hand_is_left_alone() -> None:
    watch = TailWatch(patience=2)
    for book in (_books(3, 9), _books(5, 9), _books(7, 9), _books(7, 12)):  # it moves
        assert watch.look(book) == []
    for _ in range(5):  # faust holds messages of it (in the agent, or acked not committed)
        assert watch.look(_books(7, 12, pending=True)) == []
    for _ in range(5):  # at its end, or never fetched
        assert watch.look(_books(12, 12)) == []
        assert watch.look(_books(None, None)) == []
    assert watch.taken_up == 0


def test_a_tail_taken_up_in_vain_is_tried_a_few_times_then_reported_once(
    caplog: Any,
) -> None:
    watch = TailWatch(patience=1, attempts=2)
    assert watch.look(_books(4, 5)) == [(CASES, 1)]
    assert watch.look(_books(4, 5)) == [(CASES, 1)]
    with caplog.at_level("ERROR", logger="tipsync.streams"):
        for _ in range(4):
            assert watch.look(_books(4, 5)) == []
    assert len([r for r in caplog.records if "restart the worker" in r.getMessage()]) == 1
    assert watch.look(_books(5, 7)) == [(CASES, 1)]  # a new state: tried again


def test_the_app_seeks_a_tail_faust_holds_back_to_its_committed_offset() -> None:
    """``FaustTailWatch`` reads faust's own books (a real consumer object of its aiokafka
    driver, without a broker) and seeks through faust's ``seek_wait``."""
    from weakref import WeakSet

    from streams.input_gaps import FaustTailWatch

    books = _faust_books(committed=4)
    books._paused_partitions = set()
    books._unacked_messages = WeakSet()
    books.flow_active = True
    sought: list[dict[Any, int]] = []

    async def seek_wait(partitions: dict[Any, int]) -> None:
        sought.append(dict(partitions))

    books.assignment = lambda: {FAUST_TP, TP("changelog", 0)}  # type: ignore[method-assign]
    books.highwater = lambda tp: 5  # type: ignore[method-assign]
    books.seek_wait = seek_wait  # type: ignore[method-assign]

    class App:
        consumer = books
        rebalancing = False

        class tables:  # noqa: N801 - faust's attribute
            changelog_topics = {"changelog"}

    watch = FaustTailWatch(App(), TailWatch(patience=2))
    assert watch.books() == {(CASES, 0): PartitionBooks(committed=4, end=5, pending=False)}
    asyncio.run(watch())
    assert sought == []
    asyncio.run(watch())
    assert sought == [{FAUST_TP: 4}]


def test_a_read_of_skipped_messages_that_fails_leaves_the_partition_where_it_was() -> None:
    """faust handed offset 5 after the committed 2; reading 2-4 fails (Kafka away past the
    retries). The partition must not move on to 6: when the worker goes on (or a later
    message comes), 2-4 are read again, never passed over (streams.agent_guard stops the
    worker, so its commit cannot pass them either)."""
    messages = _cases(8)
    topic = Topic(messages, committed=2)
    failing = {"reads": 1}

    async def read(partition: Partition, begin: int, end: int) -> list[Message]:
        if failing["reads"]:
            failing["reads"] -= 1
            raise ConnectionError("the partition's leader is away")
        return await topic.read(partition, begin, end)

    contiguous = ContiguousInput(topic.start, read, "ingest")
    try:
        asyncio.run(contiguous.take(messages[5]))
    except ConnectionError:
        pass
    else:
        raise AssertionError("the failed read was swallowed")
    assert contiguous.next_offset.get((CASES, 0)) is None  # not moved past 2-4
    taken = asyncio.run(contiguous.take(messages[6]))
    assert [message.offset for message in taken or ()] == [2, 3, 4, 5]


def test_a_read_of_skipped_messages_is_tried_again_while_kafka_does_not_answer(
    monkeypatch: Any,
) -> None:
    """A node away makes the read fail for a while: it is tried again with a new consumer,
    and only after ``READ_ATTEMPTS`` does the error reach the agent (and stop the worker)."""
    from aiokafka.errors import KafkaConnectionError

    import streams.input_gaps as input_gaps

    outcomes: list[Any] = [KafkaConnectionError("node 1 away"), OSError("refused"), ["read"]]
    attempts: list[int] = []

    async def once(*arguments: Any) -> Any:
        attempts.append(1)
        outcome = outcomes.pop(0) if outcomes else KafkaConnectionError("still away")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(input_gaps, "_read_range_once", once)
    monkeypatch.setattr(input_gaps, "READ_RETRY_SECONDS", 0)
    assert asyncio.run(input_gaps.read_range("kafka:9092", (CASES, 0), 2, 5)) == ["read"]
    assert len(attempts) == 3
    attempts.clear()
    try:
        asyncio.run(input_gaps.read_range("kafka:9092", (CASES, 0), 2, 5))
    except KafkaConnectionError:
        pass
    else:
        raise AssertionError("a read that never succeeds must raise")
    assert len(attempts) == input_gaps.READ_ATTEMPTS
