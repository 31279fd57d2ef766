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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from schemas.config import Settings
from schemas.dead_letters import DeadLetter
from schemas.entities import MATCH_DECISION, RECONCILED_OUTPUTS, RECONCILED_PREFIX
from schemas.errors import RegistryError, WireFormatError
from schemas.serde import AvroDeserializer, SchemaRegistry
from schemas.topics import TOPICS, TopicNames
from sinks import store
from sinks.batch import Decode, Message, PreparedBatch, Rejection, prepare_batch
from sinks.dead_letters import DeadLetterPublisher
from sinks.metrics import SinkMetrics, batch_report
from sinks.migrate import require_migrated
from sinks.records import GoldenRows, RecordError, Row
from sinks.roles import SINK_ROLE, conninfo_as
from sinks.tables import ENTITY_TABLES
from sinks.window import caught_up

log = logging.getLogger("tipsync.sink")

# How the sink's sessions appear in pg_stat_activity.
SINK_APPLICATION_NAME = "tipsync-sink"
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


class TransientFailure(Exception):
    """PostgreSQL or the registry cannot be reached right now; the batch will be retried."""


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
        self._connection: psycopg.Connection | None = None
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
        registry = SchemaRegistry(self.settings.client.registry())
        decode = avro_decoder(AvroDeserializer(registry))
        dead_letters = DeadLetterPublisher(self.settings.client, self.options.dead_letter_topic)
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
        self._consumer.subscribe(
            list(self.options.topics),
            on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke,
        )
        log.info("sink started: group %s, %d topics", self.options.consumer_group,
                 len(self.options.topics))
        try:
            while not should_stop():
                generation, messages = self._collect(should_stop)
                if messages:
                    self._process(messages, generation, decode, dead_letters)
        finally:
            self._consumer.close()
            dead_letters.close()
            registry.close()
            if self._connection is not None:
                self._connection.close()
        log.info("sink stopped: %s", self.statistics)
        return self.statistics

    def _collect(self, should_stop: Callable[[], bool]) -> tuple[int, list[Message]]:
        assert self._consumer is not None
        generation, messages = self._generation, self._carried
        self._carried = []
        deadline = time.monotonic() + self.options.batch_seconds
        while len(messages) < self.options.batch_size and not should_stop():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
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
                received = self._consumer.consume(
                    1, timeout=min(remaining, CAUGHT_UP_RECHECK_SECONDS) if checking else remaining
                )
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

    def _process(
        self, messages: list[Message], generation: int, decode: Decode,
        dead_letters: DeadLetterPublisher,
    ) -> None:
        delays = backoff_delays(self.options.backoff_first_seconds,
                                self.options.backoff_max_seconds)
        while True:
            try:
                prepared = self._prepare(messages, decode)
                started = time.monotonic()
                written = self._store(prepared, dead_letters)
                seconds = time.monotonic() - started
                break
            except TransientFailure as failure:
                self.statistics.retries += 1
                if not self._pause_and_wait(next(delays), str(failure), generation):
                    return  # partitions moved while waiting; the batch will be read again
            except store.OffsetFenceError as fence:
                log.warning("%s", fence)
                self._reseek_all()
                return
        self.statistics.batches += 1
        self.statistics.messages += len(messages)
        self.statistics.changes_written += prepared.change_count
        if self.metrics is not None:
            self.metrics.record(batch_report(
                messages, self.options.topics, prepared, written, seconds,
                committed_at=time.time(),
            ))
        self._commit_to_kafka(prepared)

    def _prepare(self, messages: list[Message], decode: Decode) -> PreparedBatch:
        try:
            return prepare_batch(messages, self.options.topics, decode)
        except RegistryError as error:
            raise TransientFailure(str(error)) from error

    # --- writing ----------------------------------------------------------------------------

    def _store(
        self, prepared: PreparedBatch, dead_letters: DeadLetterPublisher
    ) -> list[tuple[str, store.Written]]:
        """Write the batch and its offsets in one transaction; returns what each write did
        (entity, counts), for the metrics."""
        advances = [
            store.OffsetAdvance(topic, partition, self._stored[(topic, partition)], next_offset)
            for (topic, partition), next_offset in sorted(prepared.next_offsets.items())
        ]
        connection = self._connect()
        try:
            try:
                with connection.transaction():
                    written = [
                        (entity, store.write_entity(connection, ENTITY_TABLES[entity], changes))
                        for entity, changes in prepared.changes.items()
                    ]
                    written.append((MATCH_DECISION, store.write_match_decisions(
                        connection, prepared.match_decisions
                    )))
                    self._publish(dead_letters, prepared.rejections)
                    store.advance_offsets(connection, self.options.consumer_group, advances)
            except store.REFUSALS as error:
                log.warning(
                    "PostgreSQL refused a batch of %d changes (%s); writing it in halves to"
                    " find the ones to dead-letter", prepared.change_count, _reason_of(error),
                )
                written = self._store_isolating(connection, prepared, advances, dead_letters)
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            self._disconnect()
            raise TransientFailure(f"PostgreSQL is unreachable ({_first_line(error)})") from error
        for advance in advances:
            self._stored[(advance.topic, advance.partition)] = advance.next_offset
        return written

    def _store_isolating(
        self, connection: psycopg.Connection, prepared: PreparedBatch,
        advances: list[store.OffsetAdvance], dead_letters: DeadLetterPublisher,
    ) -> list[tuple[str, store.Written]]:
        refused: list[Rejection] = []
        # Only writes that returned are kept: a refused half raised and was rolled back.
        written: list[tuple[str, store.Written]] = []

        def write_entity(entity: str, changes: list[GoldenRows]) -> None:
            written.append(
                (entity, store.write_entity(connection, ENTITY_TABLES[entity], changes))
            )

        def write_match_decisions(items: list[tuple[Row, Message]]) -> None:
            written.append((MATCH_DECISION, store.write_match_decisions(
                connection, [row for row, _ in items]
            )))

        with connection.transaction():
            for entity, changes in prepared.changes.items():
                for change, error in store.write_isolating(
                    connection, partial(write_entity, entity), changes
                ):
                    origin = prepared.change_origins[(entity, change.golden_id)]
                    refused.append(Rejection(origin, _refusal(error)))
            decisions = list(zip(prepared.match_decisions, prepared.match_decision_origins,
                                 strict=True))
            for (_row, origin), error in store.write_isolating(
                connection, write_match_decisions, decisions
            ):
                refused.append(Rejection(origin, _refusal(error)))
            self._publish(dead_letters, [*prepared.rejections, *refused])
            store.advance_offsets(connection, self.options.consumer_group, advances)
        prepared.rejections.extend(refused)
        refused_positions = {(rejection.message.topic, rejection.message.partition,
                    rejection.message.offset) for rejection in refused}
        for entity, changes in prepared.changes.items():
            prepared.changes[entity] = [
                change for change in changes
                if _position(prepared.change_origins[(entity, change.golden_id)])
                not in refused_positions
            ]
        return written

    def _publish(self, dead_letters: DeadLetterPublisher, rejections: list[Rejection]) -> None:
        if not rejections:
            return
        try:
            dead_letters.publish(rejections)
        except KafkaException as error:
            raise TransientFailure(str(error)) from error
        self.statistics.dead_letters += len(rejections)
        for rejection in rejections:
            message = rejection.message
            log.warning("dead letter: %s partition %d offset %d: %s", message.topic,
                        message.partition, message.offset, rejection.letter.detail)

    def _connect(self) -> psycopg.Connection:
        if self._connection is None or self._connection.closed:
            connection = psycopg.connect(
                self.database_url, autocommit=True, connect_timeout=10,
                application_name=SINK_APPLICATION_NAME,
            )
            try:
                store.prepare_session(connection, ENTITY_TABLES.values())
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None

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

    def _wait_for(self, action: Callable[[], object], what: str) -> None:
        delays = backoff_delays(self.options.backoff_first_seconds,
                                self.options.backoff_max_seconds)
        while True:
            try:
                action()
                return
            except psycopg.OperationalError as error:
                delay = next(delays)
                log.warning("PostgreSQL is unreachable while %s (%s); retrying in %.1f s",
                            what, _first_line(error), delay)
                time.sleep(delay)

    # --- partitions ---------------------------------------------------------------------------

    def _read_stored_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        result: dict[tuple[str, int], int] = {}

        def read() -> None:
            try:
                connection = self._connect()
                with connection.transaction():
                    result.update(store.stored_offsets(
                        connection, self.options.consumer_group, topics
                    ))
            except (psycopg.OperationalError, psycopg.InterfaceError):
                self._disconnect()
                raise psycopg.OperationalError("cannot read the stored offsets") from None

        self._wait_for(read, "reading the stored offsets")
        return result

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
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


def _refusal(error: psycopg.Error) -> DeadLetter:
    """The dead letter of a row PostgreSQL refused."""
    return DeadLetter("refused_by_postgresql", _reason_of(error))


def _reason_of(error: psycopg.Error) -> str:
    """Why PostgreSQL refused a row, without the row's values (its message may quote them)."""
    diag = error.diag
    parts = [f"PostgreSQL refused it: {type(error).__name__} (SQLSTATE {error.sqlstate})"]
    if diag.table_name:
        parts.append(f"table {diag.table_name}")
    if diag.column_name:
        parts.append(f"column {diag.column_name}")
    if diag.constraint_name:
        parts.append(f"constraint {diag.constraint_name}")
    return ", ".join(parts)


def _position(message: Message) -> tuple[str, int, int]:
    return (message.topic, message.partition, message.offset)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
