"""The dead-letter audit: ``reconciled.dead_letter_audit`` (migration 0011), written by
``tipsync dlq replay`` and ``tipsync dlq show --payload`` before they publish or show
anything, read by the data protection officer (``tipsync dlq audit``, or psql as the owner).

Rows hold ids only (the dead letter's place, the topics, the principals), like
``reconciled.erasure_log``: the audit of personal data must not become a copy of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from deploy.operations.dlq import DeadLetterEntry, DeadLetterError


@dataclass(frozen=True)
class AuditRow:
    audit_id: int
    requested_at: datetime
    operator: str
    kafka_principal: str
    action: str
    dead_letter_id: str
    reason: str
    target_topic: str | None
    published_partition: int | None
    published_offset: int | None
    completed_at: datetime | None

    def as_json(self) -> dict[str, object]:
        return {
            "audit_id": self.audit_id, "requested_at": self.requested_at.isoformat(),
            "operator": self.operator, "kafka_principal": self.kafka_principal,
            "action": self.action, "dead_letter_id": self.dead_letter_id,
            "reason": self.reason, "target_topic": self.target_topic,
            "published_partition": self.published_partition,
            "published_offset": self.published_offset,
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
        }


class DeadLetterAudit:
    """The audit table of one store, for one topic root."""

    def __init__(self, database_url: str, topic_root: str, operator: str,
                 kafka_principal: str) -> None:
        self.database_url = database_url
        self.topic_root = topic_root
        self.operator = operator
        self.kafka_principal = kafka_principal

    def _connect(self) -> psycopg.Connection:  # type: ignore[type-arg]
        try:
            return psycopg.connect(self.database_url, connect_timeout=10)
        except psycopg.Error as error:
            raise DeadLetterError(
                f"the dead-letter audit ({self.database_url.split('?')[0]}) cannot be reached"
                f" ({str(error).strip()}); nothing was shown or replayed. Start the stack or"
                " check --database-url (the audit is written before any replay)"
            ) from None

    def replayed(self) -> frozenset[str]:
        """The IDs of this root's letters a replay has published before."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT DISTINCT dead_letter_id FROM reconciled.dead_letter_audit"
                " WHERE topic_root = %s AND action = 'replay' AND completed_at IS NOT NULL",
                (self.topic_root,),
            ).fetchall()
        return frozenset(row[0] for row in rows)

    def record(self, action: str, planned: Sequence[tuple[DeadLetterEntry, str | None]]
               ) -> list[int]:
        """One row per (letter, target topic), committed before anything is done; returns
        the rows' ids, in order."""
        run_id = uuid.uuid4()
        with self._connect() as connection:
            return [
                int(connection.execute(
                    "INSERT INTO reconciled.dead_letter_audit (operator, kafka_principal,"
                    " action, run_id, topic_root, dead_letter_id, reason, target_topic)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING audit_id",
                    (self.operator, self.kafka_principal, action, run_id, self.topic_root,
                     str(entry.id), entry.reason, target),
                ).fetchone()[0])  # type: ignore[index]
                for entry, target in planned
            ]

    def complete(self, audit_ids: Sequence[int], placed: Sequence[tuple[int, int]]) -> None:
        """Where each replayed message went (``placed`` in the order of ``audit_ids``)."""
        with self._connect() as connection:
            for audit_id, (partition, offset) in zip(audit_ids, placed, strict=False):
                connection.execute(
                    "UPDATE reconciled.dead_letter_audit SET published_partition = %s,"
                    " published_offset = %s, completed_at = now() WHERE audit_id = %s",
                    (partition, offset, audit_id),
                )

    def stored_versions(self, records: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """(entity, golden id) -> the golden_version the store holds (live, merged or
        deleted), for the records it has."""
        found: dict[tuple[str, str], int] = {}
        with self._connect() as connection:
            for entity, golden_id in records:
                row = connection.execute(
                    "SELECT golden_version FROM reconciled.golden_record_state"
                    " WHERE entity = %s AND golden_id::text = %s", (entity, golden_id),
                ).fetchone()
                if row is not None:
                    found[(entity, golden_id)] = int(row[0])
        return found

    def rows(self, limit: int = 100) -> list[AuditRow]:
        """The latest rows of this root, newest first."""
        with self._connect() as connection:
            found = connection.execute(
                "SELECT audit_id, requested_at, operator, kafka_principal, action,"
                " dead_letter_id, reason, target_topic, published_partition, published_offset,"
                " completed_at FROM reconciled.dead_letter_audit WHERE topic_root = %s"
                " ORDER BY audit_id DESC LIMIT %s", (self.topic_root, limit),
            ).fetchall()
        return [AuditRow(*row) for row in found]
