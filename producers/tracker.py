"""Publishes the records that changed and advances the checkpoint once Kafka acknowledged them.

The one place that joins the pure parts (versions, events) to the I/O (Kafka, checkpoint).
Both sources, files and SQL tables, hand it ``NormalisedRecord``s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from producers.canonical import Entity
from producers.checkpoint import CheckpointStore, PublishedState
from producers.delivery import Publisher
from producers.events import Governance, change_event, kafka_key
from producers.records import NormalisedRecord, RowError
from producers.versions import Change, content_hash, decide, deletion_version, epoch_millis

Serialize = Callable[[Entity, dict[str, Any]], bytes]
Topic = Callable[[Entity], str]

SAVE_EVERY_RECORDS = 5_000
SAVE_EVERY_SECONDS = 1.0


class UnacknowledgedError(RuntimeError):
    """Some events were not acknowledged by Kafka; a rerun publishes them."""


@dataclass
class Counts:
    published: int = 0
    unchanged: int = 0
    stale: int = 0
    deleted: int = 0
    events: int = 0
    value_bytes: int = 0
    acknowledged: int = 0
    failed: int = 0
    first_failure: str | None = None


@dataclass
class _Pending:
    """One record's events in flight; its checkpoint entry waits for all of them."""

    source_record_id: str
    state: PublishedState
    remaining: int
    failed: bool = field(default=False)


class ChangeTracker:
    def __init__(
        self,
        agency_id: str,
        store: CheckpointStore,
        publisher: Publisher,
        serialize: Serialize,
        topic: Topic,
        governance: Governance,
    ) -> None:
        self.agency_id = agency_id
        self.store = store
        self.publisher = publisher
        self.serialize = serialize
        self.topic = topic
        self.governance = governance
        self.known: dict[str, PublishedState] = store.load()
        self.counts = Counts()
        self._acknowledged: list[tuple[str, PublishedState]] = []
        self._last_save = time.monotonic()

    def offer(self, record: NormalisedRecord) -> Change:
        """Publish ``record`` if it changed since the last published state.

        Raises ``RowError`` when the contract refuses the record's events (nothing is sent).
        """
        previous = self.known.get(record.source_record_id)
        now = datetime.now(UTC)
        decision = decide(record, previous, epoch_millis(now))
        if decision.change is Change.UNCHANGED:
            self.counts.unchanged += 1
            return decision.change
        if decision.change is Change.STALE:
            self.counts.stale += 1
            return decision.change
        derived = list(record.derived)
        # A derived record that this row no longer implies (a removed case_ref) is deleted.
        current_ids = {item.source_record_id for item in derived}
        for old_id in previous.derived_ids if previous else ():
            if old_id not in current_ids:
                derived.append(_deletion_of(old_id, Entity.LINK, record.updated_at))
        if record.deleted:
            derived = [replace(item, deleted=True) for item in derived]
        state = PublishedState(
            decision.content_hash,
            decision.source_version,
            record.deleted,
            tuple(sorted(current_ids)) if not record.deleted else (),
        )
        self._send(record, derived, decision.source_version, decision.content_hash, state, now)
        self.counts.published += 1
        if record.deleted:
            self.counts.deleted += 1
        return decision.change

    def delete_missing(self, seen: set[str], entity: Entity) -> int:
        """DELETE every live record of the checkpoint that a full export no longer has."""
        now = datetime.now(UTC)
        missing = [
            (source_record_id, state)
            for source_record_id, state in self.known.items()
            if not state.deleted and source_record_id not in seen
        ]
        for source_record_id, previous in missing:
            version = deletion_version(previous, epoch_millis(now))
            record = _deletion_of(source_record_id, entity, None)
            derived = [_deletion_of(old, Entity.LINK, None) for old in previous.derived_ids]
            digest = content_hash(record)
            state = PublishedState(digest, version, True, ())
            self._send(record, derived, version, digest, state, now)
            self.counts.published += 1
            self.counts.deleted += 1
            self.pump()
        return len(missing)

    def _send(
        self,
        record: NormalisedRecord,
        derived: Iterable[NormalisedRecord],
        version: int,
        digest: str,
        state: PublishedState,
        now: datetime,
    ) -> None:
        records = [record, *derived]
        # Every event of the row is encoded before the first is sent: a row the contract
        # refuses is rejected whole, never half published.
        values: list[bytes] = []
        for item in records:
            event = change_event(self.agency_id, item, version, digest, now, self.governance)
            try:
                values.append(self.serialize(item.entity, event))
            except ValueError as error:
                raise RowError(f"the contract refuses it: {error}") from None
        pending = _Pending(record.source_record_id, state, remaining=len(records))
        for item, value in zip(records, values, strict=True):
            self.publisher.publish(
                self.topic(item.entity),
                kafka_key(self.agency_id, item.source_record_id),
                value,
                self._acknowledger(pending),
            )
            self.counts.events += 1
            self.counts.value_bytes += len(value)
        # Later rows compare against what is in flight, not only what is acknowledged.
        self.known[record.source_record_id] = state

    def _acknowledger(self, pending: _Pending) -> Callable[[str | None], None]:
        def acknowledged(error: str | None) -> None:
            if error is not None:
                pending.failed = True
                self.counts.failed += 1
                self.counts.first_failure = self.counts.first_failure or error
            else:
                self.counts.acknowledged += 1
            pending.remaining -= 1
            if pending.remaining == 0 and not pending.failed:
                self._acknowledged.append((pending.source_record_id, pending.state))

        return acknowledged

    def pump(self) -> None:
        """Serve acknowledgements and save them now and then (cheap to call per row)."""
        self.publisher.poll(0)
        if len(self._acknowledged) >= SAVE_EVERY_RECORDS or (
            self._acknowledged and time.monotonic() - self._last_save > SAVE_EVERY_SECONDS
        ):
            self.save()

    def save(self, state: dict[str, Any] | None = None) -> None:
        batch, self._acknowledged = self._acknowledged, []
        self.store.save(batch, state)
        self._last_save = time.monotonic()

    def finish(self, timeout: float = 120.0, state: dict[str, Any] | None = None) -> None:
        """Wait for every acknowledgement and save; ``state`` is saved only if all arrived."""
        outstanding = self.publisher.flush(timeout)
        complete = outstanding == 0 and self.counts.failed == 0
        self.save(state if complete else None)
        if outstanding:
            raise UnacknowledgedError(
                f"{outstanding} events were not acknowledged by Kafka within {timeout:g} s; "
                "the checkpoint keeps only what was, so running the same command again "
                "publishes the rest"
            )
        if self.counts.failed:
            raise UnacknowledgedError(
                f"Kafka refused {self.counts.failed} events (first: {self.counts.first_failure});"
                " the checkpoint keeps only what was acknowledged, so running the same command "
                "again publishes the rest"
            )


def _deletion_of(
    source_record_id: str, entity: Entity, updated_at: datetime | None
) -> NormalisedRecord:
    return NormalisedRecord(
        entity=entity,
        source_record_id=source_record_id,
        deleted=True,
        updated_at=updated_at,
        explicit_version=None,
        payload={},
    )
