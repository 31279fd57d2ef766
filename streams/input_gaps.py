"""Every message of an input partition processed at least once, whatever faust hands over.

faust-streaming 0.15.3 can skip messages of a partition and commit past them (read in
``faust/transport/consumer.py``, ``Consumer._drain_messages``; docs/OPERATIONS.md "What
survives what"): a batch fetched before the seek to the committed offset that ends a
rebalance can be delivered after it. Its first message moves the partition's read offset far
ahead (and ``_add_gap`` records the offsets in between as a gap, which ``_new_offset`` counts
as acknowledged); the messages fetched again after the seek then lie below the read offset
and are dropped ("DROPPED MESSAGE ROFF"). The next commit moves past them: nobody processes
them again. When no gap is recorded, ``_new_offset`` instead never commits the partition
again (``min(acked) - committed > 1``): the worker holds it, consumed to the end, with a lag
that never reaches zero until it restarts. It can also hand a message twice (a second seek
back to the committed offset). Seen in the act after a restart on an empty table
(``tests/integration/test_stream_ingest_restart.py``): committed 9, 11 and 22, first offsets
handed 11, 13 and 25; in another run 10 messages of one partition skipped at once.

``ContiguousInput`` keeps, per partition, the offset of the next message to process: the
group's committed offset at the partition's first message after an assignment (where faust
itself starts), then the offset after each message processed. A message past it means faust
skipped the ones between: they are read from the topic (``read_range``, a consumer of its own
with no group) and processed first. A message before it was handed again and is passed over.
Once they are processed they are recorded in faust's books as a gap (``FaustAcknowledger``),
so its commit moves on. The stage processes a partition's messages one after the other, so
the commit that faust makes past a gap always comes after the gap was read and processed (the
message after it is acknowledged only once processed).

Two more holes, where no later message reveals a skip: ``SeekUncommittedToStart`` completes
faust's seek after a rebalance for the partitions the group never committed (aiokafka seeks
only those committed above 0), and ``TailWatch`` (``FaustTailWatch`` on a timer of the app)
seeks back a partition whose last messages faust fetched but never handed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from schemas.client_config import ClientConfig
from streams.outputs import InputMessage

log = logging.getLogger("tipsync.streams")

T = TypeVar("T")
READ_ATTEMPTS, READ_RETRY_SECONDS = 12, 5

Partition = tuple[str, int]  # (topic, partition)
# where the group starts reading a partition: its committed offset, else the earliest one
StartOffset = Callable[[Partition], Awaitable[int]]
# the messages of a partition from the first offset up to (not including) the second
ReadRange = Callable[[Partition, int, int], Awaitable[Sequence[InputMessage]]]
# tells faust's consumer that the offsets of a partition from the first up to (not including)
# the second were processed (``FaustAcknowledger``)
Acknowledge = Callable[[Partition, int, int], Awaitable[None]]


def committed_offsets(client: str | ClientConfig | AdminClient, group_id: str,
                      partitions: Iterable[Partition] | None = None) -> dict[Partition, int]:
    """The group's committed offsets (of ``partitions``, else of every partition it
    committed); a partition without one is left out."""
    admin = _admin(client)
    wanted = None if partitions is None else [
        KafkaTopicPartition(topic, partition) for topic, partition in partitions
    ]
    request = ConsumerGroupTopicPartitions(group_id, wanted)
    result = admin.list_consumer_group_offsets([request])[group_id].result()
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions or []
            if tp.offset >= 0}


def earliest_offset(client: str | ClientConfig | AdminClient, partition: Partition) -> int:
    """The first offset the partition still holds."""
    admin = _admin(client)
    tp = KafkaTopicPartition(*partition)
    futures = admin.list_offsets({tp: OffsetSpec.earliest()}, request_timeout=30)
    return int(next(iter(futures.values())).result().offset)


def _admin(client: str | ClientConfig | AdminClient) -> AdminClient:
    if isinstance(client, AdminClient):
        return client
    return AdminClient(ClientConfig.of(client).librdkafka())


async def read_range(client: str | ClientConfig, partition: Partition, from_offset: int,
                     until_offset: int) -> list[ConsumerRecord]:
    """The messages of ``partition`` from ``from_offset`` up to (not including)
    ``until_offset``, in order, read by a consumer of its own (no group, no commits); tried
    again, with a new consumer, for a minute while Kafka does not answer (a node away), then
    the error stops the worker before anything past the range is committed
    (``streams.agent_guard``)."""
    return await _tried_again(
        f"{partition[0]}[{partition[1]}] from offset {from_offset} to {until_offset}",
        lambda: _read_range_once(client, partition, from_offset, until_offset),
        (KafkaError, OSError),
    )


async def _read_range_once(client: str | ClientConfig, partition: Partition, from_offset: int,
                           until_offset: int) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(
        **ClientConfig.of(client).aiokafka(), enable_auto_commit=False, group_id=None,
        # an offset retention removed meanwhile: from the first one left, never the end
        auto_offset_reset="earliest",
    )
    await consumer.start()
    tp = TopicPartition(*partition)
    records: list[ConsumerRecord] = []
    try:
        consumer.assign([tp])
        consumer.seek(tp, from_offset)
        while await consumer.position(tp) < until_offset:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
            records.extend(record for record in batch.get(tp, [])
                           if from_offset <= record.offset < until_offset)
    finally:
        await consumer.stop()
    return records


class GroupStart:
    """Where the group starts each partition (``StartOffset``): its committed offset, read
    for all of the group's partitions at once and kept until ``forget`` (an assignment
    changes who commits what), else the partition's earliest offset."""

    def __init__(self, client: str | ClientConfig, group_id: str) -> None:
        self._client = client
        self._group_id = group_id
        self._committed: dict[Partition, int] | None = None
        self._admin: AdminClient | None = None  # made at the first look, then kept

    def forget(self) -> None:
        self._committed = None

    async def __call__(self, partition: Partition) -> int:
        if self._admin is None:
            self._admin = _admin(self._client)
        if self._committed is None:
            self._committed = await _retried(
                f"the committed offsets of group {self._group_id}",
                committed_offsets, self._admin, self._group_id,
            )
        offset = self._committed.get(partition)
        if offset is None:
            offset = await _retried(f"the earliest offset of {partition[0]}[{partition[1]}]",
                                    earliest_offset, self._admin, partition)
        return offset


async def _retried(what: str, read: Callable[..., T], *arguments: object) -> T:
    """``read(*arguments)`` in a thread, tried again for a minute while the broker does not
    answer (it may be restarting); then the error stops the worker before anything past the
    unknown offset is committed (``streams.agent_guard``)."""
    return await _tried_again(what, lambda: asyncio.to_thread(read, *arguments),
                              (KafkaException,))


async def _tried_again(what: str, attempt: Callable[[], Awaitable[T]],
                       errors: tuple[type[Exception], ...]) -> T:
    """``attempt()``, made again every ``READ_RETRY_SECONDS`` while it raises one of
    ``errors``, ``READ_ATTEMPTS`` times at most; the last error is raised."""
    attempts = 0
    while True:
        try:
            return await attempt()
        except errors as error:
            attempts += 1
            if attempts == READ_ATTEMPTS:
                raise
            log.warning("reading %s failed (%s); trying again in %d s", what, error,
                        READ_RETRY_SECONDS)
            await asyncio.sleep(READ_RETRY_SECONDS)


class ContiguousInput:
    """Per input partition, the next offset to process (see the module's text)."""

    def __init__(self, start: StartOffset, read: ReadRange, stage: str,
                 acknowledge: Acknowledge | None = None) -> None:
        self._start = start
        self._read = read
        self._stage = stage
        self._acknowledge = acknowledge
        self.next_offset: dict[Partition, int] = {}
        # per partition, the first offset ``take`` read past faust for the message it holds
        self._read_from: dict[Partition, int] = {}
        self.reread = 0  # messages read from the topic because faust skipped them

    def forget(self, partitions: Iterable[Partition]) -> None:
        """The partitions were revoked: their next offsets are read again at their next
        message (from the group's committed offsets: another worker may have moved on)."""
        for partition in partitions:
            self.next_offset.pop(partition, None)

    async def take(self, message: InputMessage) -> Sequence[InputMessage] | None:
        """The messages of ``message``'s partition before it that faust did not hand over
        (to process first, in order, then ``processed``), or None when ``message`` was
        processed already."""
        partition = (message.topic, message.partition)
        expected = self.next_offset.get(partition)
        if expected is None:
            expected = await self._start(partition)
        if message.offset < expected:
            return None
        if message.offset == expected:
            self.next_offset[partition] = message.offset + 1
            return ()
        # read before the partition moves on: a read that fails leaves it where it was (and
        # stops the worker: streams.agent_guard)
        missed = await self._read(partition, expected, message.offset)
        self._read_from[partition] = expected
        self.next_offset[partition] = message.offset + 1
        if missed:  # (none: offsets without messages, such as transaction markers)
            self.reread += len(missed)
            log.warning("%s: %d message(s) of %s[%d] from offset %d not handed by faust "
                        "before offset %d; processing them first", self._stage, len(missed),
                        message.topic, message.partition, expected, message.offset)
        return missed

    async def processed(self, message: InputMessage) -> None:
        """The messages ``take`` read for ``message`` were processed: faust may count their
        offsets as acknowledged (without it, faust can hold the partition's commit at the
        offset before them for ever: the stalled worker of docs/OPERATIONS.md)."""
        partition = (message.topic, message.partition)
        first = self._read_from.pop(partition, None)
        if self._acknowledge is not None and first is not None:
            await self._acknowledge(partition, first, message.offset)


class FaustAcknowledger:
    """Counts offsets read past faust as acknowledged in faust's own books (faust 0.15.3,
    ``faust/transport/consumer.py``): ``Consumer._add_gap`` records offsets between two it
    handed as a gap, and ``_new_offset`` commits across a gap once an offset after it is
    acknowledged. When faust hands a partition's first message past its committed offset
    without recording that gap (seen after a restart's rebalance: committed 10, first
    offset handed 12), ``_new_offset`` refuses to commit anything (``min(acked) -
    committed > 1``) until the worker restarts: the partition's lag never reaches zero.
    Recording the offsets this worker read and processed itself as a gap lets the commit
    move on past them, once the message after them is acknowledged."""

    def __init__(self, consumer: Callable[[], object]) -> None:
        self._consumer = consumer  # faust's (the app makes it when first asked)

    async def __call__(self, partition: Partition, first: int, until: int) -> None:
        from faust.types import TP

        add_gap = getattr(self._consumer(), "_add_gap")  # noqa: B009 - private in faust
        await add_gap(TP(*partition), first, until - 1)


# faust's consumer (``faust.transport.consumer.Consumer``): only what the seek below uses
SeekToCommitted = Callable[[], Awaitable[Mapping[Any, int | None]]]
SeekToBeginning = Callable[..., Awaitable[object]]


class SeekUncommittedToStart:
    """faust's seek to the committed offsets, completed for the input partitions the group
    never committed: they are sought to their first offset too.

    Every rebalance ends with faust's ``Consumer.perform_seek``, and so does a fetch that
    finds the flow stopped (``Consumer.getmany``): records fetched meanwhile were dropped
    (their partition paused, the flow stopped or the generation changed while a fetched batch
    was handed over), and the seek back to the committed offsets makes the fetcher read them
    again. That seek is aiokafka's ``AIOKafkaConsumer.seek_to_committed``, which seeks only
    partitions whose committed offset is above 0: a partition the group never committed
    (a new agency topic, or one whose first messages the worker took just before it was
    killed) stays where the dropped records left it, past them. Nothing hands them again;
    ``ContiguousInput`` reads them at the partition's next message, but when none comes the
    partition is never committed and its lag never reaches zero (the stalled worker of the
    fault suite; the new agency's case that ``test_stream_workers`` waited for).

    Table changelog partitions are left alone: faust's recovery places them itself."""

    def __init__(self, seek_to_committed: SeekToCommitted, seek_to_beginning: SeekToBeginning,
                 changelog_topics: Callable[[], Collection[str]]) -> None:
        self._seek_to_committed = seek_to_committed
        self._seek_to_beginning = seek_to_beginning
        self._changelog_topics = changelog_topics
        self.sought = 0  # partitions sought to their first offset

    async def __call__(self) -> Mapping[Any, int | None]:
        committed = await self._seek_to_committed()
        changelogs = self._changelog_topics()
        uncommitted = sorted(
            (tp for tp, offset in committed.items()
             if (offset is None or offset <= 0) and tp.topic not in changelogs),
            key=lambda tp: (tp.topic, tp.partition),
        )
        if uncommitted:
            try:
                await self._seek_to_beginning(*uncommitted)
            except IllegalStateError:
                # not assigned any more: a rebalance began, and the seek that ends it seeks
                # them again if they come back
                log.info("input partitions were revoked before they were sought to their "
                         "first offset; the next rebalance's seek takes them")
                return committed
            self.sought += len(uncommitted)
            log.info("%d input partition(s) without a committed offset sought to their first "
                     "offset: %s", len(uncommitted),
                     ", ".join(f"{tp.topic}[{tp.partition}]" for tp in uncommitted))
        return committed

    @classmethod
    def install(cls, consumer: Any, changelog_topics: Callable[[], Collection[str]]) -> None:
        """Replace ``consumer.seek_to_committed`` (faust 0.15.3's aiokafka consumer, whose
        ``perform_seek`` calls it) with the completed seek."""
        consumer.seek_to_committed = cls(
            consumer.seek_to_committed, consumer._thread.seek_to_beginning, changelog_topics,
        )


@dataclass(frozen=True)
class PartitionBooks:
    """What faust's consumer knows of one input partition at a look (``TailWatch``)."""

    committed: int | None  # the offset faust committed last (the next to read), if any
    end: int | None  # the partition's end offset as last fetched (None: not fetched yet)
    pending: bool  # faust holds messages of it handed but not yet committed


class TailWatch:
    """Input partitions whose last messages faust never handed over, found and read again.

    ``ContiguousInput`` notices messages faust skipped at the partition's next message; at
    the end of a partition there is none. faust 0.15.3 was seen doing it (a new agency's only
    message, on ``tipsync stream --workers 2``): fetched (its read offset moved to it), never
    handed to the agent, never acknowledged, so never committed, and its lag stays for ever
    (the stalled worker). A partition is taken up again when, at ``patience`` looks in a row,
    it has messages past its committed offset, faust holds none of them (none handed and not
    yet committed), and neither its committed offset nor its end moved: the app then seeks it
    back to the committed offset and faust hands the messages again (those already processed
    are passed over by ``ContiguousInput``)."""

    def __init__(self, patience: int = 3, attempts: int = 3) -> None:
        self._patience = patience
        self._attempts = attempts
        self._still: dict[Partition, tuple[int | None, int | None, int]] = {}
        # per partition, the (committed, end) at which it was last taken up, and how often
        self._taken: dict[Partition, tuple[int | None, int | None, int]] = {}
        self.taken_up = 0  # partitions sought back

    def look(self, books: Mapping[Partition, PartitionBooks]) -> list[Partition]:
        """The partitions to seek back to their committed offset now."""
        for partition in [partition for partition in self._still if partition not in books]:
            del self._still[partition]
        stuck: list[Partition] = []
        for partition, book in sorted(books.items()):
            behind = book.end is not None and book.end > (book.committed or 0)
            if not behind or book.pending:
                self._still.pop(partition, None)
                continue
            committed, end, looks = self._still.get(partition, (None, None, 0))
            looks = looks + 1 if (committed, end) == (book.committed, book.end) else 1
            if looks < self._patience:
                self._still[partition] = (book.committed, book.end, looks)
                continue
            self._still.pop(partition, None)
            taken_committed, taken_end, attempts = self._taken.get(partition, (None, None, 0))
            if (taken_committed, taken_end) != (book.committed, book.end):
                attempts = 0
            if attempts == self._attempts:  # said once; offsets without messages, perhaps
                log.error("%s[%d]: %d offset(s) past the committed offset %s are still not "
                          "handed after %d attempts; if `tipsync lag` shows it, restart the "
                          "worker", partition[0], partition[1],
                          (book.end or 0) - (book.committed or 0), book.committed, attempts)
            if attempts >= self._attempts:
                self._taken[partition] = (book.committed, book.end, attempts + 1)
                continue
            self._taken[partition] = (book.committed, book.end, attempts + 1)
            stuck.append(partition)
            self.taken_up += 1
        return stuck


class FaustTailWatch:
    """``TailWatch`` over faust 0.15.3's consumer (its books are private: ``_committed_offset``,
    ``_acked``, ``_unacked_messages``), looked at by a timer of the app."""

    def __init__(self, app: Any, watch: TailWatch | None = None) -> None:
        self._app = app
        self.watch = watch or TailWatch()

    def books(self) -> dict[Partition, PartitionBooks]:
        consumer = self._app.consumer
        changelogs = self._app.tables.changelog_topics
        in_flight = {message.tp for message in list(consumer._unacked_messages)
                     if not message.acked}
        books = {}
        for tp in consumer.assignment():
            if tp.topic in changelogs or tp in consumer._paused_partitions:
                continue
            books[(tp.topic, tp.partition)] = PartitionBooks(
                committed=consumer._committed_offset.get(tp), end=consumer.highwater(tp),
                pending=bool(consumer._acked.get(tp)) or tp in in_flight,
            )
        return books

    async def __call__(self) -> None:
        app = self._app
        if app.rebalancing or not app.consumer.flow_active:
            return
        try:
            books = self.books()
        except Exception as error:  # noqa: BLE001 - a failed look must not stop the worker
            log.info("the input partitions could not be looked at (%r); at the next look", error)
            return
        for topic, partition in self.watch.look(books):
            await self._seek_back(topic, partition)

    async def _seek_back(self, topic: str, partition: int) -> None:
        from faust.types import TP

        consumer = self._app.consumer
        tp = TP(topic, partition)
        committed = consumer._committed_offset.get(tp)
        try:
            offset = committed
            if offset is None:
                offset = (await consumer.earliest_offsets(tp))[tp]
            log.warning("%s[%d]: messages from offset %d to %s were never handed by faust and "
                        "the partition is not committed past them; reading them again",
                        topic, partition, offset, consumer.highwater(tp))
            await consumer.seek_wait({tp: offset})
        except (IllegalStateError, AssertionError, KeyError) as error:
            # revoked meanwhile (aiokafka: not assigned): its next owner starts at the
            # committed offset anyway
            log.info("%s[%d] was not sought back (%r): no longer assigned", topic, partition,
                     error)
