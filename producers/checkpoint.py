"""What a producer has published, kept per agency, entity and source, safe against crashes.

A SQLite database (Python's standard library) under
``<state folder>/producers/<agency>/<entity>/<source-hash>/checkpoint.sqlite3``. Rows are
written only after Kafka acknowledged the events, in transactions with ``synchronous=FULL``,
so a ``kill -9`` at any moment leaves either the old or the new state of a record, never a
torn one; a rerun republishes whatever was not acknowledged (downstream drops repeats).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS published (
    source_record_id TEXT PRIMARY KEY,
    content_hash     TEXT NOT NULL,
    source_version   INTEGER NOT NULL,
    deleted          INTEGER NOT NULL,
    derived_ids      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class PublishedState:
    """The last acknowledged state of one source record."""

    content_hash: str
    source_version: int
    deleted: bool
    # source_record_ids of the records this one implied (a person's link to a case), so
    # that they can be deleted with it.
    derived_ids: tuple[str, ...] = ()


def source_folder(home: Path, agency_id: str, entity: str, source: str) -> Path:
    """The folder of one source's checkpoint and rejects; ``source`` is any stable name."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    return home / "producers" / agency_id / entity / digest


def _private_file(path: Path) -> None:
    """Create ``path`` mode 0600 if missing (SQLite gives its -wal and -shm files the mode of
    the database file), whatever the process umask."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


class CheckpointStore:
    def __init__(self, folder: Path, source: str) -> None:
        # Private to the user (source names, record ids): 0700 folder, 0600 files.
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _private_file(folder / "source.txt")
        (folder / "source.txt").write_text(source + "\n", encoding="utf-8")
        self.folder = folder
        _private_file(folder / "checkpoint.sqlite3")
        self.connection = sqlite3.connect(folder / "checkpoint.sqlite3", isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")
        self.connection.executescript(SCHEMA)

    def load(self) -> dict[str, PublishedState]:
        rows = self.connection.execute(
            "SELECT source_record_id, content_hash, source_version, deleted, derived_ids "
            "FROM published"
        )
        return {
            row[0]: PublishedState(row[1], row[2], bool(row[3]), tuple(json.loads(row[4])))
            for row in rows
        }

    def save(
        self,
        records: Iterable[tuple[str, PublishedState]],
        state: dict[str, Any] | None = None,
    ) -> None:
        """Record acknowledged states (and named values such as a watermark) atomically."""
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(
                "INSERT INTO published VALUES (?, ?, ?, ?, ?) ON CONFLICT (source_record_id) "
                "DO UPDATE SET content_hash = excluded.content_hash, "
                "source_version = excluded.source_version, deleted = excluded.deleted, "
                "derived_ids = excluded.derived_ids",
                (
                    (
                        source_record_id,
                        published.content_hash,
                        published.source_version,
                        int(published.deleted),
                        json.dumps(list(published.derived_ids)),
                    )
                    for source_record_id, published in records
                ),
            )
            for name, value in (state or {}).items():
                connection.execute(
                    "INSERT INTO state VALUES (?, ?) ON CONFLICT (name) "
                    "DO UPDATE SET value = excluded.value",
                    (name, json.dumps(value)),
                )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def state(self, name: str) -> Any:
        row = self.connection.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def close(self) -> None:
        self.connection.close()
