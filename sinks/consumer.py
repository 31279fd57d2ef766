"""The sink's consumer loop: reconciled topics -> PostgreSQL, effectively once.

Kafka's own committed offsets are not what the sink trusts: the next offset of every
partition is stored in ``reconciled.sink_offsets`` in the same transaction as the rows, and
on every assignment the consumer seeks there. A crash at any point therefore either loses
the whole transaction (and the batch is read again) or none of it. Offsets are also
committed to Kafka afterwards, only so that lag tools see the sink's progress.

Failures and what happens:

- an event that cannot be decoded or stored: it goes to ``tip.dlq.sink`` with the reason,
  in the same batch, and the sink goes on;
- PostgreSQL (or the registry) unreachable: the partitions are paused, the consumer keeps
  its group membership, and the same batch is retried with growing pauses until it is
  written; nothing is skipped;
- another sink of the same group wrote a partition's offset (a rebalance this sink had not
  heard of yet): the batch is dropped and every partition re-read from the stored offsets.

While PostgreSQL writes batch N (on the writer's thread, ``sinks/writer.py``), this loop reads
and prepares batch N+1. At most one batch is in flight, and N+1 is handed to the writer only
once N's outcome is known, so the order per partition is kept and N+1's offsets start from
what N committed: if N failed transiently it is retried first; if N was fenced off, or a
rebalance came, N+1 (read before the re-seek) is dropped and read again. The rebalance
callbacks wait for the write in flight before they touch the partitions; a write that failed
is then dropped, as every partition is sought to its stored offset anyway. On stop the write
in flight is waited for: it commits, or it rolls back and is read again next time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from schemas.config import Settings
from schemas.entities import RECONCILED_OUTPUTS, RECONCILED_PREFIX
from schemas.errors import RegistryError, WireFormatError
from schemas.serde import AvroDeserializer, SchemaRegistry
from schemas.topics import TOPICS, TopicNames
from sinks import store
from sinks.batch import Decode, Message, PreparedBatch, prepare_batch
from sinks.dead_letters import DeadLetterPublisher
from sinks.metrics import SinkMetrics, batch_report
from sinks.migrate import require_migrated
from sinks.records import RecordError
from sinks.roles import SINK_ROLE, conninfo_as
from sinks.window import caught_up
from sinks.writer import BatchWriter, Committed, TransientFailure, first_line

log = logging.getLogger("tipsync.sink")

# How often a batch being read looks whether the write in flight has ended, to count it.
WRITE_RECHECK_SECONDS = 0.1
# How often a held batch looks again whether the sink has caught up (sinks/window.py).
CAUGHT_UP_RECHECK_SECONDS = 0.1


def default_topics(names: TopicNames = TOPICS) -> dict[str, str]:
    """Every reconciled topic and what it carries (an entity, or match_decision)."""
    return {names.reconciled(output): output for output in RECONCILED_OUTPUTS}


@dataclass(frozen=True)
class SinkOptions:
    topics: Mapping[str, str] = field(default_factory=default_topics)
    consumer_group: str = TOPICS.sink_group
    dead_letter_topic: str = TOPICS.dlq("sink")
    # A batch closes as soon as the sink has caught up with every partition it owns (nothing
    # more to read now: a change at a trickle is written at once, sinks/window.py), else at
    # batch_size messages or after batch_seconds: under a backlog, big batches reduce more
    # changes per key and amortise each transaction (tipsync bench sink: 50,000 gives 1.6x
    # the rate of 20,000 over 100,000 keys).
    batch_size: int = 50_000
    batch_seconds: float = 1.0
    # False: every batch waits out its window, as before the caught-up rule (kept to measure
    # the difference: tipsync bench sink --trickle).
    close_when_caught_up: bool = True
    # A sink that dies is noticed after this long and its partitions go to the others.
    session_timeout_ms: int = 10_000
    # Static group membership: a sink restarted with the same id takes its partitions back
    # at once instead of waiting for the session timeout and a rebalance.
    instance_id: str | None = None
    backoff_first_seconds: float = 0.5
    backoff_max_seconds: float = 30.0

    @classmethod
    def under(cls, names: TopicNames, **overrides: Any) -> SinkOptions:
        """The options of a sink reading the topics under ``names``' root (tests, staging)."""
        values: dict[str, Any] = {"topics": default_topics(names),
                                  "consumer_group": names.sink_group,
                                  "dead_letter_topic": names.dlq("sink")}
        return cls(**{**values, **overrides})


@dataclass
class SinkStatistics:
    batches: int = 0
    messages: int = 0
    changes_written: int = 0
    dead_letters: int = 0
    retries: int = 0


@dataclass(frozen=True)
class InFlight:
    """The batch the writer is writing: its messages, the generation they were read in, and
    the outcome to come (sinks/writer.py, ``BatchWriter.write``)."""

    messages: list[Message]
    generation: int
    prepared: PreparedBatch
    outcome: Future[Committed]


def backoff_delays(first: float, maximum: float) -> Iterator[float]:
    """0.5 s, 1 s, 2 s, ... up to ``maximum``, forever."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, maximum)


def avro_decoder(deserializer: AvroDeserializer) -> Decode:
    """Decode with the registry; undecodable bytes become RecordError (dead letter), an
    unreachable registry stays an error that makes the batch wait and retry."""

    def decode(message: Message, output: str) -> dict[str, Any] | None:
        if message.value is None:
            return None
        try:
            return deserializer(message.value, expected=RECONCILED_PREFIX + output).record
        except WireFormatError as error:
            raise RecordError(str(error), error.reason) from None

    return decode


class ReconciledSink:
    """Consumes the reconciled topics into the store until ``should_stop()`` says so."""

    def __init__(
        self,
        settings: Settings,
        options: SinkOptions | None = None,
        database_url: str | None = None,
        metrics: SinkMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or SinkOptions()
        # The store the settings name, as the sink's own role (never the owner).
        self.database_url = database_url or conninfo_as(settings.database_url, SINK_ROLE)
        self.statistics = SinkStatistics()
        # Counted only after a batch commits, so a retried batch is counted once.
        self.metrics = metrics
        self._writer: BatchWriter | None = None
        self._in_flight: InFlight | None = None
        self._consumer: Consumer | None = None
        # (topic, partition) -> the offset stored in PostgreSQL (None: no row yet), for
        # every partition this sink owns now.
        self._stored: dict[tuple[str, int], int | None] = {}
        # Bumped by every rebalance; a batch read before one is dropped (positions moved).
        self._generation = 0
        self._carried: list[Message] = []
        for topic, output in self.options.topics.items():
            if output not in RECONCILED_OUTPUTS:
                raise ValueError(
                    f"topic {topic} is mapped to '{output}', which is not a reconciled output"
                    f" (expected one of: {', '.join(RECONCILED_OUTPUTS)})"
                )

    # --- the loop -------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> SinkStatistics:
        # The owner migrates (`tipsync db migrate`); the sink only checks it was done.
        self._wait_for(lambda: require_migrated(self.database_url), "checking the migrations")
        with ExitStack() as closing:  # closed in the reverse order, each even if one fails
            registry = SchemaRegistry(self.settings.client.registry())
            closing.callback(registry.close)
            dead_letters = DeadLetterPublisher(self.settings.client,
                                               self.options.dead_letter_topic)
            closing.callback(dead_letters.close)
            self._writer = BatchWriter(self.database_url, self.options.consumer_group,
                                       dead_letters)
            closing.callback(self._writer.close)
            self._consume(avro_decoder(AvroDeserializer(registry)), should_stop, closing)
        log.info("sink stopped: %s", self.statistics)
        return self.statistics

    def _consume(
        self, decode: Decode, should_stop: Callable[[], bool], closing: ExitStack
    ) -> None:
        config: dict[str, Any] = {
            "group.id": self.options.consumer_group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "session.timeout.ms": self.options.session_timeout_ms,
        }
        if self.options.instance_id:
            config["group.instance.id"] = self.options.instance_id
        self._consumer = Consumer(self.settings.client.librdkafka(config))
        closing.callback(self._consumer.close)
        # First of all, on the way out: the write in flight commits or rolls back (and its
        # batch is read again next time).
        closing.callback(self._settle_in_flight)
        self._consumer.subscribe(
            list(self.options.topics),
            on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke,
        )
        log.info("sink started: group %s, %d topics", self.options.consumer_group,
                 len(self.options.topics))
        while not should_stop():
            generation, messages = self._collect(should_stop)
            # Batch N+1 is read and prepared while PostgreSQL writes batch N...
            prepared = self._prepare(messages, generation, decode) if messages else None
            writing = self._in_flight
            if prepared is None and (writing is None or not writing.outcome.done()):
                continue  # nothing to hand over: read on (and serve rebalances) meanwhile
            # ...and handed over once N has committed (or been retried, or dropped).
            self._finish_writing()
            if prepared is not None and generation == self._generation:
                self._start_writing(messages, generation, prepared)

    def _collect(self, should_stop: Callable[[], bool]) -> tuple[int, list[Message]]:
        assert self._consumer is not None
        generation, messages = self._generation, self._carried
        self._carried = []
        deadline = time.monotonic() + self.options.batch_seconds
        while len(messages) < self.options.batch_size and not should_stop():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            writing = self._in_flight
            if writing is not None and writing.outcome.done():
                if writing.outcome.exception() is not None:
                    break  # retried (or every partition re-read) before reading on
                self._settle_in_flight()
            # What librdkafka has fetched already, without waiting (consume() with a timeout
            # returns only when it has as many messages as asked or the timeout passed)...
            received = self._consumer.consume(
                min(self.options.batch_size - len(messages), 10_000), timeout=0
            )
            if not received:
                checking = messages and self.options.close_when_caught_up
                if checking and self._caught_up():
                    break
                # ...else wait for the next message, at most until the window closes. While a
                # batch is held, look again soon: a partition's end is unknown until its first
                # fetch response after an assignment, and waiting out the whole window on that
                # once held a trickle's change for 30 s.
                wait = min(remaining, CAUGHT_UP_RECHECK_SECONDS) if checking else remaining
                if self._in_flight is not None:
                    # A write ended is counted (and committed to Kafka) soon, not after the
                    # whole window: at a trickle the next batch may be far away.
                    wait = min(wait, WRITE_RECHECK_SECONDS)
                received = self._consumer.consume(1, timeout=wait)
            if self._generation != generation:
                # A rebalance happened inside consume(): every owned partition was sought to
                # its stored offset, so what was read before is read again.
                generation, messages = self._generation, []
            messages.extend(self._messages_of(received))
        return generation, [m for m in messages if (m.topic, m.partition) in self._stored]

    def _caught_up(self) -> bool:
        """Nothing more to read now on any owned partition (sinks/window.py)."""
        assert self._consumer is not None
        owned = [TopicPartition(topic, partition) for topic, partition in self._stored]
        next_offsets, ends = {}, {}
        for partition in self._consumer.position(owned):
            position = (partition.topic, partition.partition)
            stored = self._stored.get(position)
            # No message handed out since the assignment: the next one is at the stored offset.
            next_offsets[position] = (partition.offset if partition.offset >= 0
                                      else 0 if stored is None else stored)
            ends[position] = self._consumer.get_watermark_offsets(partition, cached=True)[1]
        return caught_up(next_offsets, ends)

    def _messages_of(self, received: Sequence[Any]) -> list[Message]:
        messages = []
        for item in received:
            error = item.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise KafkaException(error)
                log.warning("Kafka reported %s; the consumer retries by itself", error.str())
                continue
            messages.append(Message(
                item.topic(), item.partition(), item.offset(), item.key(), item.value()
            ))
        return messages

    def _prepare(
        self, messages: list[Message], generation: int, decode: Decode
    ) -> PreparedBatch | None:
        """The batch reduced to what must be written; while the registry cannot be reached,
        retried with the partitions paused. None: a rebalance came meanwhile (the messages
        will be read again)."""
        delays = self._backoff()
        while True:
            try:
                return prepare_batch(messages, self.options.topics, decode)
            except RegistryError as error:
                self.statistics.retries += 1
                if not self._pause_and_wait(next(delays), str(error), generation):
                    return None

    # --- writing ----------------------------------------------------------------------------

    def _start_writing(
        self, messages: list[Message], generation: int, prepared: PreparedBatch
    ) -> None:
        """Hand the batch to the writer, its offsets moving on from the ones stored now
        (nothing else is in flight: the previous batch's outcome is known)."""
        assert self._writer is not None and self._in_flight is None
        advances = [
            store.OffsetAdvance(topic, partition, self._stored[(topic, partition)], next_offset)
            for (topic, partition), next_offset in sorted(prepared.next_offsets.items())
        ]
        self._in_flight = InFlight(messages, generation, prepared,
                                   self._writer.write(prepared, advances))

    def _finish_writing(self) -> None:
        """Wait for the batch in flight to commit. While PostgreSQL (or Kafka, for its dead
        letters) cannot be reached, the same batch is written again after a pause with the
        partitions paused; fenced off, it is dropped and every partition re-read."""
        delays = self._backoff()
        while self._in_flight is not None:
            writing, self._in_flight = self._in_flight, None
            try:
                committed = writing.outcome.result()
            except TransientFailure as failure:
                self.statistics.retries += 1
                if not self._pause_and_wait(next(delays), str(failure), writing.generation):
                    return  # partitions moved while waiting; the batch will be read again
                self._start_writing(writing.messages, writing.generation, writing.prepared)
            except store.OffsetFenceError as fence:
                log.warning("%s", fence)
                self._reseek_all()
            else:
                self._count(writing, committed)

    def _settle_in_flight(self) -> None:
        """Wait for the batch in flight and count it if it committed. One that did not is
        dropped, not retried: this runs before a rebalance, which seeks every partition to its
        stored offset, and when the sink stops; either way the batch is read again."""
        writing, self._in_flight = self._in_flight, None
        if writing is None:
            return
        try:
            committed = writing.outcome.result()
        except (TransientFailure, store.OffsetFenceError) as error:
            log.warning("a batch of %d messages was not written (%s); it will be read again",
                        len(writing.messages), error)
            return
        self._count(writing, committed)

    def _count(self, writing: InFlight, committed: Committed) -> None:
        """A batch committed: its offsets are the ones stored now; metrics, Kafka's copy."""
        prepared = writing.prepared
        self._stored.update(prepared.next_offsets)
        self.statistics.batches += 1
        self.statistics.messages += len(writing.messages)
        self.statistics.changes_written += prepared.change_count
        self.statistics.dead_letters += len(prepared.rejections)
        if self.metrics is not None:
            self.metrics.record(batch_report(
                writing.messages, self.options.topics, prepared, committed.written,
                committed.seconds, committed_at=committed.committed_at,
            ))
        self._commit_to_kafka(prepared)

    # --- waiting without losing the group ---------------------------------------------------

    def _pause_and_wait(self, seconds: float, why: str, generation: int) -> bool:
        """Wait ``seconds`` with the owned partitions paused; False if a rebalance happened."""
        assert self._consumer is not None
        log.warning("%s; retrying the same batch in %.1f s", why, seconds)
        owned = [TopicPartition(topic, partition) for topic, partition in self._stored]
        self._consumer.pause(owned)
        try:
            deadline = time.monotonic() + seconds
            while (remaining := deadline - time.monotonic()) > 0:
                # Polling keeps this member in its group; paused partitions deliver nothing
                # new, and anything already fetched is kept for the next batch, in order.
                item = self._consumer.poll(min(remaining, 1.0))
                if item is not None:
                    self._carried.extend(self._messages_of([item]))
                if self._generation != generation:
                    self._carried = []
                    return False
        finally:
            self._consumer.resume(
                [TopicPartition(topic, partition) for topic, partition in self._stored]
            )
        return True

    def _backoff(self) -> Iterator[float]:
        return backoff_delays(self.options.backoff_first_seconds,
                              self.options.backoff_max_seconds)

    def _wait_for(self, action: Callable[[], object], what: str) -> None:
        delays = self._backoff()
        while True:
            try:
                action()
                return
            except psycopg.OperationalError as error:
                delay = next(delays)
                log.warning("PostgreSQL is unreachable while %s (%s); retrying in %.1f s",
                            what, first_line(error), delay)
                time.sleep(delay)

    # --- partitions ---------------------------------------------------------------------------

    def _read_stored_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        writer = self._writer
        assert writer is not None
        result: dict[tuple[str, int], int] = {}

        def read() -> None:
            result.update(writer.stored_offsets(topics))

        self._wait_for(read, "reading the stored offsets")
        return result

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle_in_flight()
        stored = self._read_stored_offsets(sorted({p.topic for p in partitions}))
        for partition in partitions:
            offset = stored.get((partition.topic, partition.partition))
            partition.offset = OFFSET_BEGINNING if offset is None else offset
            self._stored[(partition.topic, partition.partition)] = offset
        consumer.assign(partitions)
        self._generation += 1
        log.info("assigned %d partition(s); reading from the offsets stored in PostgreSQL",
                 len(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle_in_flight()
        for partition in partitions:
            self._stored.pop((partition.topic, partition.partition), None)
        self._generation += 1
        consumer.unassign()

    def _reseek_all(self) -> None:
        assert self._consumer is not None
        owned = list(self._stored)
        stored = self._read_stored_offsets(sorted({topic for topic, _ in owned}))
        for topic, partition in owned:
            offset = stored.get((topic, partition))
            self._stored[(topic, partition)] = offset
            self._consumer.seek(TopicPartition(
                topic, partition, OFFSET_BEGINNING if offset is None else offset
            ))
        self._generation += 1
        self._carried = []

    def _commit_to_kafka(self, prepared: PreparedBatch) -> None:
        assert self._consumer is not None
        offsets = [TopicPartition(topic, partition, next_offset)
                   for (topic, partition), next_offset in prepared.next_offsets.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as error:
            # Only lag tools read these; PostgreSQL holds the offsets the sink trusts.
            log.debug("committing offsets to Kafka for monitoring failed: %s", error)


