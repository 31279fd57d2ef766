"""The sink's PostgreSQL side: one connection, one thread, one batch at a time.

The sink's Python (Avro decoding, reduction, rows) and PostgreSQL (COPY, upserts) each keep a
core busy, and one after the other each waits while the other works. ``BatchWriter`` runs the
write of a batch on a thread of its own, so the consumer reads and prepares batch N+1 while
PostgreSQL writes batch N (psycopg releases the GIL while it waits on the server).

Nothing about exactly-once changes here: a batch's rows, its dead letters and its partitions'
next offsets are written in one transaction, the offsets fenced (``sinks/store.py``). The
writer owns the sink's connection and is its only user: every write and every read of the
stored offsets runs on its thread, in the order asked, so a read after a write sees it
committed or rolled back, never half done. Which batch is written when, and what a failure
means, is the consumer's business (``sinks/consumer.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import psycopg
from confluent_kafka import KafkaException

from schemas.dead_letters import DeadLetter
from schemas.entities import MATCH_DECISION
from sinks import store
from sinks.batch import Message, PreparedBatch, Rejection
from sinks.dead_letters import DeadLetterPublisher
from sinks.records import GoldenRows, Row
from sinks.tables import ENTITY_TABLES

log = logging.getLogger("tipsync.sink")

# How the sink's sessions appear in pg_stat_activity.
SINK_APPLICATION_NAME = "tipsync-sink"


class TransientFailure(Exception):
    """PostgreSQL or the registry cannot be reached right now; the batch will be retried."""


@dataclass(frozen=True)
class Committed:
    """A batch's transaction committed: what each write did (entity, counts) for the
    metrics, how long the transaction took, and when it committed (seconds since the epoch,
    for freshness: the consumer may notice the commit a little later)."""

    written: list[tuple[str, store.Written]]
    seconds: float
    committed_at: float


class BatchWriter:
    """Writes prepared batches and reads stored offsets on its own thread, in order."""

    def __init__(
        self, database_url: str, consumer_group: str, dead_letters: DeadLetterPublisher
    ) -> None:
        self.database_url = database_url
        self.consumer_group = consumer_group
        self.dead_letters = dead_letters
        self._connection: psycopg.Connection | None = None
        # batches the session's temporary tables hold the dead rows of (store.truncate_temporary)
        self._batches_since_truncate = 0
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tipsync-sink-writer")

    def write(
        self, prepared: PreparedBatch, advances: list[store.OffsetAdvance]
    ) -> Future[Committed]:
        """Start writing ``prepared`` and ``advances`` in one transaction. The outcome is
        Committed, or raises TransientFailure (nothing written; retry the same batch) or
        store.OffsetFenceError (another sink owns a partition now; nothing written).
        ``prepared`` belongs to the writer until then: refused rows are moved from its
        changes to its rejections."""
        return self._thread.submit(self._write, prepared, advances)

    def stored_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        """The offsets stored for ``topics``, after every write asked for before; raises
        psycopg.OperationalError while PostgreSQL cannot be reached."""
        return self._thread.submit(self._read_stored_offsets, topics).result()

    def close(self) -> None:
        """Wait for what was asked, then close the connection."""
        self._thread.submit(self._disconnect).result()
        self._thread.shutdown()

    # --- on the writer's thread -------------------------------------------------------------

    def _write(
        self, prepared: PreparedBatch, advances: list[store.OffsetAdvance]
    ) -> Committed:
        started = time.monotonic()
        try:
            connection = self._connect()
            if self._batches_since_truncate >= store.TRUNCATE_TEMPORARY_EVERY:
                # before the batch: failing here, nothing of it is written yet
                store.truncate_temporary(connection, ENTITY_TABLES.values())
                self._batches_since_truncate = 0
            try:
                with connection.transaction():
                    written = [
                        (entity, store.write_entity(connection, ENTITY_TABLES[entity], changes))
                        for entity, changes in prepared.changes.items()
                    ]
                    written.append((MATCH_DECISION, store.write_match_decisions(
                        connection, prepared.match_decisions
                    )))
                    self._publish(prepared.rejections)
                    store.advance_offsets(connection, self.consumer_group, advances)
                self._batches_since_truncate += 1
            except store.REFUSALS as error:
                log.warning(
                    "PostgreSQL refused a batch of %d changes (%s); writing it in halves to"
                    " find the ones to dead-letter", prepared.change_count, _reason_of(error),
                )
                written = self._write_isolating(connection, prepared, advances)
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            self._disconnect()
            raise TransientFailure(f"PostgreSQL is unreachable ({first_line(error)})") from error
        return Committed(written, time.monotonic() - started, time.time())

    def _write_isolating(
        self, connection: psycopg.Connection, prepared: PreparedBatch,
        advances: list[store.OffsetAdvance],
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
                    refused.append(Rejection(origin, refusal(error)))
            decisions = list(zip(prepared.match_decisions, prepared.match_decision_origins,
                                 strict=True))
            for (_row, origin), error in store.write_isolating(
                connection, write_match_decisions, decisions
            ):
                refused.append(Rejection(origin, refusal(error)))
            self._publish([*prepared.rejections, *refused])
            store.advance_offsets(connection, self.consumer_group, advances)
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

    def _publish(self, rejections: list[Rejection]) -> None:
        if not rejections:
            return
        try:
            self.dead_letters.publish(rejections)
        except KafkaException as error:
            raise TransientFailure(str(error)) from error
        for rejection in rejections:
            message = rejection.message
            log.warning("dead letter: %s partition %d offset %d: %s", message.topic,
                        message.partition, message.offset, rejection.letter.detail)

    def _read_stored_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        try:
            connection = self._connect()
            with connection.transaction():
                return store.stored_offsets(connection, self.consumer_group, topics)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self._disconnect()
            raise psycopg.OperationalError("cannot read the stored offsets") from None

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


def refusal(error: psycopg.Error) -> DeadLetter:
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


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
