"""Where ``tipsync subscribe`` writes an agency's feed: JSON Lines files or the agency's own
PostgreSQL. Each target stores, with the messages, the feed's next offset per partition, in one
step that either happens whole or not at all, so a subscriber killed at any moment resumes
where the stored offsets say: nothing lost, nothing written twice.

- ``PostgresTarget``: the messages in ``tipsync_feed.message`` (upserted by ``message_id``;
  ``deliveries`` counts how often one arrived, so a message republished by the task force
  shows as 2, never as a second row) and the offsets in ``tipsync_feed.consumed``, in the same
  transaction. A ``RECORD_ERASED`` message (``tipsync erase``) deletes, in that transaction,
  the person's earlier messages below its ``golden_version``: they may hold an erased
  record's values.
- ``JsonLinesTarget``: one message per line in ``feed-<agency>-<n>.jsonl`` files, a new file
  after ``rotate_bytes``; the offsets and the length of the current file that they cover in
  ``checkpoint.json``, written after the lines are on disk (fsync) and replaced atomically. At
  start, lines past the checkpointed length (written, not yet checkpointed) are cut off: they
  are read from Kafka again. Lines are never rewritten: whoever reads the files applies a
  ``RECORD_ERASED`` line (docs/SECURITY.md "Erasure and the agencies' feeds").
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

SCHEMA = "tipsync_feed"
DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class FeedRow:
    """One decoded feed message and where it was read."""

    topic: str
    partition: int
    offset: int
    message: dict[str, Any]


class FeedTarget(Protocol):
    def positions(self, topic: str) -> dict[int, int]:
        """partition -> the next offset to read, as stored (empty: from the beginning)."""
        ...

    def write(self, rows: Sequence[FeedRow], positions: Mapping[int, int]) -> None:
        """Store the rows and the new positions of ``rows[0].topic``, all or nothing."""
        ...

    def close(self) -> None: ...


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def message_json(message: Mapping[str, Any]) -> str:
    """A feed message as one line of JSON (dates and times in ISO 8601)."""
    return json.dumps(message, default=_json_value, ensure_ascii=False, sort_keys=True)


# ---------------------------------------------------------------------------------------------


_CREATE = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.message (
    message_id uuid PRIMARY KEY,
    agency_id text NOT NULL,
    kind text NOT NULL,
    person_id uuid NOT NULL,
    golden_version bigint NOT NULL,
    produced_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    topic text NOT NULL,
    partition integer NOT NULL,
    "offset" bigint NOT NULL,
    deliveries integer NOT NULL DEFAULT 1,
    message jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS message_person ON {SCHEMA}.message (person_id, golden_version);
CREATE TABLE IF NOT EXISTS {SCHEMA}.consumed (
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
"""

_UPSERT = f"""
INSERT INTO {SCHEMA}.message (message_id, agency_id, kind, person_id, golden_version,
                              produced_at, topic, partition, "offset", message)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (message_id) DO UPDATE SET deliveries = {SCHEMA}.message.deliveries + 1,
    received_at = now(), topic = EXCLUDED.topic, partition = EXCLUDED.partition,
    "offset" = EXCLUDED."offset"
"""

# What an erasure notice removes: the person's messages that may hold the erased values.
_FORGET_ERASED = f"""
DELETE FROM {SCHEMA}.message WHERE person_id = %s AND golden_version < %s
    AND kind <> 'RECORD_ERASED'
"""
ERASED_KIND = "RECORD_ERASED"

_POSITION = f"""
INSERT INTO {SCHEMA}.consumed (topic, partition, next_offset) VALUES (%s, %s, %s)
ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset,
    updated_at = now()
"""


class PostgresTarget:
    """The agency's own PostgreSQL (``conninfo``: a libpq URI; its password from a passfile
    or PGPASSWORD, never the command line). Creates ``tipsync_feed`` when it is missing."""

    def __init__(self, conninfo: str) -> None:
        self._connection = psycopg.connect(conninfo, connect_timeout=10)
        with self._connection.transaction():
            self._connection.execute(_CREATE)

    def positions(self, topic: str) -> dict[int, int]:
        with self._connection.transaction():
            rows = self._connection.execute(
                f"SELECT partition, next_offset FROM {SCHEMA}.consumed WHERE topic = %s",
                (topic,),
            ).fetchall()
        return {int(partition): int(offset) for partition, offset in rows}

    def write(self, rows: Sequence[FeedRow], positions: Mapping[int, int]) -> None:
        if not rows:
            return
        topic = rows[0].topic
        with self._connection.transaction(), self._connection.cursor() as cursor:
            cursor.executemany(_UPSERT, [
                (row.message["message_id"], row.message["agency_id"], row.message["kind"],
                 row.message["person_id"], row.message["golden_version"],
                 row.message["produced_at"], row.topic, row.partition, row.offset,
                 Jsonb(row.message, dumps=message_json))
                for row in rows
            ])
            erasures = [(row.message["person_id"], row.message["golden_version"])
                        for row in rows if row.message["kind"] == ERASED_KIND]
            if erasures:
                cursor.executemany(_FORGET_ERASED, erasures)
            cursor.executemany(_POSITION, [
                (topic, partition, offset) for partition, offset in sorted(positions.items())
            ])

    def close(self) -> None:
        self._connection.close()


# ---------------------------------------------------------------------------------------------


class JsonLinesTarget:
    """JSON Lines files in ``directory`` (made 0700; files 0600: they hold personal data)."""

    CHECKPOINT = "checkpoint.json"

    def __init__(self, directory: Path, agency_id: str,
                 rotate_bytes: int = DEFAULT_ROTATE_BYTES) -> None:
        self.directory = directory
        self._agency_id = agency_id
        self._rotate_bytes = rotate_bytes
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        checkpoint = self._read_checkpoint()
        self._positions: dict[str, dict[int, int]] = {
            topic: {int(p): int(o) for p, o in offsets.items()}
            for topic, offsets in checkpoint.get("positions", {}).items()
        }
        self._number = int(checkpoint.get("file_number", 1))
        size = int(checkpoint.get("size", 0))
        path = self._path(self._number)
        # Lines written after the last checkpoint are read from Kafka again: cut them off.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.ftruncate(descriptor, size)
        os.close(descriptor)
        self._file = open(path, "ab")  # noqa: SIM115 - held open across batches
        self._size = size

    def _path(self, number: int) -> Path:
        return self.directory / f"feed-{self._agency_id}-{number:06d}.jsonl"

    def _read_checkpoint(self) -> dict[str, Any]:
        path = self.directory / self.CHECKPOINT
        if not path.exists():
            return {}
        try:
            document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(
                f"{path} cannot be read ({error}); it says how far the files are complete. "
                "Restore it, or move the folder aside and subscribe again from the beginning"
            ) from None
        return document

    def positions(self, topic: str) -> dict[int, int]:
        return dict(self._positions.get(topic, {}))

    def write(self, rows: Sequence[FeedRow], positions: Mapping[int, int]) -> None:
        if not rows:
            return
        data = "".join(message_json(row.message) + "\n" for row in rows).encode()
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._size += len(data)
        self._positions.setdefault(rows[0].topic, {}).update(positions)
        self._checkpoint()
        if self._size >= self._rotate_bytes:
            self._file.close()
            self._number += 1
            self._size = 0
            path = self._path(self._number)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            self._file = open(path, "ab")  # noqa: SIM115 - held open across batches
            self._checkpoint()

    def _checkpoint(self) -> None:
        document = {"file_number": self._number, "size": self._size,
                    "positions": {topic: {str(p): o for p, o in sorted(offsets.items())}
                                  for topic, offsets in self._positions.items()}}
        path = self.directory / self.CHECKPOINT
        temporary = path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def close(self) -> None:
        self._file.close()
