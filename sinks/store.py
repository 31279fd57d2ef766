"""Writing reconciled changes and consumed offsets to PostgreSQL in one transaction.

The write of one entity, per batch:

1. COPY the batch's changes (already reduced to the last change per golden id) into
   session-temporary tables: COPY is the fastest way into PostgreSQL, and the temporary
   tables are unlogged and unindexed.
2. Decide which changes are newer than what the store holds (``golden_record_state``);
   older ones are dropped, so a replayed or duplicated event changes nothing.
3. Apply the accepted ones with one INSERT ... ON CONFLICT per table (tombstones and
   merges delete), and move the consumed offsets forward, fenced: the offset row must still
   hold the value this sink read, or another sink took the partition and this one must stop.

SQL text is built once per table from ``sinks.tables``; only identifiers from that module
go into it, never data.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

import psycopg

from sinks.records import DELETED, LIVE, EntityTable, GoldenRows, Row

SCHEMA = "reconciled"

MATCH_DECISION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("left_agency_id", "text"),
    ("left_source_record_id", "text"),
    ("right_agency_id", "text"),
    ("right_source_record_id", "text"),
    ("decided_at", "timestamptz"),
    ("score", "double precision"),
    ("features", "jsonb"),
    ("rule", "text"),
    ("decision", "text"),
)


class OffsetFenceError(Exception):
    """Another sink moved this partition's offset: this one no longer owns the partition."""


@dataclass(frozen=True)
class OffsetAdvance:
    """Move ``topic``/``partition`` from ``expected`` (None: no row yet) to ``next_offset``."""

    topic: str
    partition: int
    expected: int | None
    next_offset: int


# --- COPY text encoding (pure) ----------------------------------------------------------------

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_ARRAY_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})


def copy_field(value: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        items = ",".join(
            "NULL" if item is None else '"' + str(item).translate(_ARRAY_ESCAPES) + '"'
            for item in value
        )
        return ("{" + items + "}").translate(_COPY_ESCAPES)
    raise TypeError(f"cannot write a {type(value).__name__} with COPY")


def copy_text(rows: Iterable[Row]) -> str:
    """Rows in COPY text format, one line each."""
    return "".join("\t".join(map(copy_field, row)) + "\n" for row in rows)


def incoming_rows(changes: Sequence[GoldenRows], table: EntityTable) -> Iterable[Row]:
    width = len(table.columns)
    for change in changes:
        row = change.row if change.state == LIVE else (None,) * width
        yield (
            change.golden_id, change.golden_version, change.state, change.merged_into,
            *row, list(change.agencies), change.source_count,
            *((change.lineage_json or "[]",) if table.has_lineage else ()),
        )


def incoming_source_rows(changes: Sequence[GoldenRows]) -> Iterable[Row]:
    for change in changes:
        for source in change.sources:
            yield (
                source.golden_id, source.agency_id, source.source_record_id,
                source.source_version, source.event_time, source.deleted,
            )


# --- SQL per table --------------------------------------------------------------------------


@dataclass(frozen=True)
class TableStatements:
    create_temporary: tuple[str, ...]
    copy_incoming: str
    copy_incoming_sources: str
    accept: str
    record_state: str
    delete_retired: str
    delete_dropped_sources: str
    upsert: str
    upsert_sources: str


@cache
def statements_for(table: EntityTable) -> TableStatements:
    name, key = table.table, table.id_column
    target, sources = f"{SCHEMA}.{name}", f"{SCHEMA}.{name}_source"
    incoming, incoming_sources, accepted = (
        f"incoming_{name}", f"incoming_{name}_source", f"accepted_{name}",
    )
    lineage = ("lineage",) if table.has_lineage else ()
    data_columns = (*(column.name for column in table.columns), "agencies", "source_count",
                    *lineage)
    data_types = (
        *(f"{column.name} {column.sql_type}" for column in table.columns),
        "agencies text[]", "source_count integer", *(("lineage jsonb",) if lineage else ()),
    )
    incoming_columns = ("golden_id", "golden_version", "state", "merged_into", *data_columns)
    source_columns = ("golden_id", "agency_id", "source_record_id", "source_version",
                      "event_time", "deleted")
    return TableStatements(
        create_temporary=(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {incoming} (golden_id uuid,"
            f" golden_version bigint, state text, merged_into uuid, {', '.join(data_types)})"
            "",
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {incoming_sources} (golden_id uuid,"
            " agency_id text, source_record_id text, source_version bigint,"
            " event_time timestamptz, deleted boolean)",
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {accepted} (golden_id uuid PRIMARY KEY,"
            " golden_version bigint, state text, merged_into uuid)",
        ),
        copy_incoming=f"COPY {incoming} ({', '.join(incoming_columns)}) FROM STDIN",
        copy_incoming_sources=(
            f"COPY {incoming_sources} ({', '.join(source_columns)}) FROM STDIN"
        ),
        # A tombstone removes a live record; anything else must be newer than what we hold.
        accept=(
            f"INSERT INTO {accepted} (golden_id, golden_version, state, merged_into)"
            f" SELECT i.golden_id, coalesce(i.golden_version, s.golden_version), i.state,"
            f" i.merged_into FROM {incoming} AS i"
            f" LEFT JOIN {SCHEMA}.golden_record_state AS s"
            f" ON s.entity = '{table.entity}' AND s.golden_id = i.golden_id"
            f" WHERE CASE WHEN i.state = '{DELETED}' THEN s.state = '{LIVE}'"
            f" ELSE s.golden_id IS NULL OR i.golden_version > s.golden_version END"
        ),
        record_state=(
            f"INSERT INTO {SCHEMA}.golden_record_state"
            " (entity, golden_id, golden_version, state, merged_into)"
            f" SELECT '{table.entity}', golden_id, golden_version, state, merged_into"
            f" FROM {accepted}"
            " ON CONFLICT (entity, golden_id) DO UPDATE SET"
            " golden_version = excluded.golden_version, state = excluded.state,"
            " merged_into = excluded.merged_into"
        ),
        delete_retired=(
            f"DELETE FROM {target} AS t USING {accepted} AS a"
            f" WHERE t.{key} = a.golden_id AND a.state <> '{LIVE}'"
        ),
        delete_dropped_sources=(
            f"DELETE FROM {sources} AS s USING {accepted} AS a"
            f" WHERE s.{key} = a.golden_id AND (a.state <> '{LIVE}' OR NOT EXISTS ("
            f" SELECT FROM {incoming_sources} AS n WHERE n.golden_id = a.golden_id"
            " AND n.agency_id = s.agency_id AND n.source_record_id = s.source_record_id))"
        ),
        upsert=(
            f"INSERT INTO {target} ({key}, golden_version, {', '.join(data_columns)})"
            f" SELECT i.golden_id, i.golden_version,"
            f" {', '.join('i.' + column for column in data_columns)}"
            f" FROM {incoming} AS i JOIN {accepted} AS a USING (golden_id)"
            f" WHERE a.state = '{LIVE}'"
            f" ON CONFLICT ({key}) DO UPDATE SET golden_version = excluded.golden_version,"
            f" {', '.join(f'{column} = excluded.{column}' for column in data_columns)}"
            f" WHERE excluded.golden_version > {name}.golden_version"
        ),
        # Two records of one batch may claim the same source (it moved between golden
        # records); keep the newest version so one INSERT never touches a row twice.
        upsert_sources=(
            f"INSERT INTO {sources} (agency_id, source_record_id, {key}, source_version,"
            " event_time, deleted)"
            " SELECT DISTINCT ON (n.agency_id, n.source_record_id) n.agency_id,"
            " n.source_record_id, n.golden_id, n.source_version, n.event_time, n.deleted"
            f" FROM {incoming_sources} AS n JOIN {accepted} AS a USING (golden_id)"
            f" WHERE a.state = '{LIVE}'"
            " ORDER BY n.agency_id, n.source_record_id, n.source_version DESC, n.golden_id"
            f" ON CONFLICT (agency_id, source_record_id) DO UPDATE SET {key} = excluded.{key},"
            " source_version = excluded.source_version, event_time = excluded.event_time,"
            " deleted = excluded.deleted"
            f" WHERE excluded.source_version >= {name}_source.source_version"
            f" AND (excluded.{key}, excluded.source_version, excluded.event_time,"
            f" excluded.deleted) IS DISTINCT FROM ({name}_source.{key},"
            f" {name}_source.source_version, {name}_source.event_time, {name}_source.deleted)"
        ),
    )


_CREATE_MATCH_DECISIONS = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS incoming_match_decision ("
    + ", ".join(f"{name} {sql_type}" for name, sql_type in MATCH_DECISION_COLUMNS)
    + ")"
)
_COPY_MATCH_DECISIONS = (
    "COPY incoming_match_decision ("
    + ", ".join(name for name, _ in MATCH_DECISION_COLUMNS) + ") FROM STDIN"
)
_INSERT_MATCH_DECISIONS = (
    f"INSERT INTO {SCHEMA}.match_decision ("
    + ", ".join(name for name, _ in MATCH_DECISION_COLUMNS)
    + ") SELECT " + ", ".join(name for name, _ in MATCH_DECISION_COLUMNS)
    + " FROM incoming_match_decision ON CONFLICT DO NOTHING"
)


# --- the I/O shell -----------------------------------------------------------------------------


def prepare_session(connection: psycopg.Connection, tables: Iterable[EntityTable]) -> None:
    """Set up a fresh connection: UTC, and the temporary tables the writes copy into."""
    with connection.transaction():
        connection.execute("SET TIME ZONE 'UTC'")
        for table in tables:
            for statement in statements_for(table).create_temporary:
                connection.execute(statement)
        connection.execute(_CREATE_MATCH_DECISIONS)


def write_entity(
    connection: psycopg.Connection, table: EntityTable, changes: Sequence[GoldenRows]
) -> None:
    """Apply one entity's changes (at most one per golden id) inside the open transaction."""
    if not changes:
        return
    statements = statements_for(table)
    with connection.cursor() as cursor:
        _copy(cursor, statements.copy_incoming, incoming_rows(changes, table))
        _copy(cursor, statements.copy_incoming_sources, incoming_source_rows(changes))
        cursor.execute(statements.accept)
        if cursor.rowcount:
            for statement in (
                statements.record_state, statements.delete_retired,
                statements.delete_dropped_sources, statements.upsert, statements.upsert_sources,
            ):
                cursor.execute(statement)
        # Emptied here rather than ON COMMIT: a retry record by record reuses them in one
        # transaction, and a rollback restores them to this empty state anyway.
        cursor.execute(
            f"TRUNCATE incoming_{table.table}, incoming_{table.table}_source,"
            f" accepted_{table.table}"
        )


def write_match_decisions(connection: psycopg.Connection, rows: Sequence[Row]) -> None:
    if not rows:
        return
    with connection.cursor() as cursor:
        _copy(cursor, _COPY_MATCH_DECISIONS, rows)
        cursor.execute(_INSERT_MATCH_DECISIONS)
        cursor.execute("TRUNCATE incoming_match_decision")


def advance_offsets(
    connection: psycopg.Connection, consumer_group: str, advances: Iterable[OffsetAdvance]
) -> None:
    """Move the stored offsets forward inside the open transaction, or raise
    OffsetFenceError when a row no longer holds the offset this sink started from."""
    with connection.cursor() as cursor:
        for advance in advances:
            if advance.expected is None:
                cursor.execute(
                    f"INSERT INTO {SCHEMA}.sink_offsets"
                    " (consumer_group, topic, partition, next_offset) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (consumer_group, advance.topic, advance.partition, advance.next_offset),
                )
            else:
                cursor.execute(
                    f"UPDATE {SCHEMA}.sink_offsets SET next_offset = %s"
                    " WHERE consumer_group = %s AND topic = %s AND partition = %s"
                    " AND next_offset = %s",
                    (advance.next_offset, consumer_group, advance.topic, advance.partition,
                     advance.expected),
                )
            if cursor.rowcount != 1:
                raise OffsetFenceError(
                    f"partition {advance.partition} of {advance.topic}: the stored offset of"
                    f" consumer group {consumer_group} is no longer {advance.expected}; another"
                    " sink of the same group wrote it, so this one lost the partition and"
                    " re-reads its offsets"
                )


def stored_offsets(
    connection: psycopg.Connection, consumer_group: str, topics: Sequence[str]
) -> dict[tuple[str, int], int]:
    rows = connection.execute(
        f"SELECT topic, partition, next_offset FROM {SCHEMA}.sink_offsets"
        " WHERE consumer_group = %s AND topic = ANY(%s)",
        (consumer_group, list(topics)),
    ).fetchall()
    return {(topic, partition): next_offset for topic, partition, next_offset in rows}


def _copy(cursor: psycopg.Cursor, statement: str, rows: Iterable[Row]) -> None:
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join(map(copy_field, row)))
        buffer.write("\n")
    data = buffer.getvalue()
    if not data:
        return
    with cursor.copy(statement) as copy:
        copy.write(data)
