"""Writing reconciled changes and consumed offsets to PostgreSQL in one transaction.

The write of one entity, per batch:

1. COPY the batch's changes (already reduced to the last change per golden id, each golden
   record as one JSON document) into a session-temporary table: COPY is the fastest way
   into PostgreSQL, and the temporary table is unlogged and unindexed.
2. Decide which changes are newer than what the store holds (``golden_record_state``);
   older ones are dropped, so a replayed or duplicated event changes nothing.
3. Apply the accepted ones with one INSERT ... ON CONFLICT per table, spreading the JSON
   over typed columns with ``jsonb_to_record`` (tombstones and merges delete), and move
   the consumed offsets forward, fenced: the offset row must still hold the value this sink
   read, or another sink took the partition and this one must stop.

SQL text is built once per table from ``sinks.tables``; only identifiers from that module
go into it, never data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from typing import Any, TypeVar

import psycopg

from sinks.records import DELETED, LIVE, MERGED, Column, EntityTable, GoldenRows, Row
from sinks.tables import MATCH_DECISION_COLUMNS

SCHEMA = "reconciled"
T = TypeVar("T")


class OffsetFenceError(Exception):
    """Another sink moved this partition's offset: this one no longer owns the partition."""


@dataclass(frozen=True)
class Written:
    """What one write did, for the sink's metrics: counts and times, never a value.

    ``rows`` maps a table name to the rows inserted, updated or deleted in it;
    ``event_times`` holds the agency's event_time (seconds since the epoch) of every source
    record row written, so that freshness can be measured when the transaction commits."""

    changes: int = 0
    accepted: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    event_times: tuple[float, ...] = ()


@dataclass(frozen=True)
class OffsetAdvance:
    """Move ``topic``/``partition`` from ``expected`` (None: no row yet) to ``next_offset``."""

    topic: str
    partition: int
    expected: int | None
    next_offset: int


# --- COPY text encoding (pure) ----------------------------------------------------------------

_ARRAY_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})


def _escaped(text: bytes) -> bytes:
    # COPY text format: backslash starts an escape, tab and newline end a field or row.
    # The membership tests are cheap; most values (and every JSON document) need at most
    # the first replacement.
    if b"\\" in text:
        text = text.replace(b"\\", b"\\\\")
    if b"\t" in text or b"\n" in text or b"\r" in text:
        text = text.replace(b"\t", b"\\t").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
    return text


def copy_field(value: Any) -> bytes:
    """One value in PostgreSQL's COPY text format. ``bytes`` are UTF-8 text (such as the
    JSON documents orjson writes), not bytea."""
    if value is None:
        return b"\\N"
    if isinstance(value, bytes):
        return _escaped(value)
    if isinstance(value, str):
        return _escaped(value.encode("utf-8"))
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, int | float):
        return repr(value).encode("ascii")
    if isinstance(value, datetime | date):
        return value.isoformat().encode("ascii")
    if isinstance(value, list | tuple):
        items = ",".join(
            "NULL" if item is None else '"' + str(item).translate(_ARRAY_ESCAPES) + '"'
            for item in value
        )
        return _escaped(("{" + items + "}").encode("utf-8"))
    raise TypeError(f"cannot write a {type(value).__name__} with COPY")


def copy_text(rows: Iterable[Row]) -> bytes:
    """Rows in COPY text format, one line each."""
    return b"".join(b"\t".join(map(copy_field, row)) + b"\n" for row in rows)


INCOMING_COLUMNS = ("golden_id", "golden_version", "state", "merged_into", "record",
                    "agencies", "source_count")
INCOMING_TYPES = ("uuid", "bigint", "text", "uuid", "jsonb", "text[]", "integer")


def incoming_rows(changes: Iterable[GoldenRows]) -> Iterable[Row]:
    for change in changes:
        yield (change.golden_id, change.golden_version, change.state, change.merged_into,
               change.record_json, change.agencies, change.source_count)


# --- SQL per table --------------------------------------------------------------------------


@dataclass(frozen=True)
class TableStatements:
    create_temporary: tuple[str, ...]
    copy_incoming: str
    accept: str
    record_state: str
    delete_retired: str
    collect_sources: str
    delete_dropped_sources: str
    upsert: str
    upsert_sources: str
    empty_temporary: tuple[str, ...]
    truncate_temporary: str


_SOURCE_FIELDS = ("s(agency_id text, source_record_id text, source_version bigint,"
                  " event_time timestamptz, deleted boolean, quality_issues jsonb,"
                  " retention_until date, legal_basis text, consent_ref text)")


def _column_value(column: Column) -> str:
    # Lists default to empty rather than NULL, as the contract's Avro defaults do.
    if column.sql_type.endswith("[]"):
        return f"coalesce(r.{column.name}, '{{}}')"
    if column.sql_type == "jsonb":
        return f"coalesce(r.{column.name}, '[]')"
    return f"r.{column.name}"


# The statements that reach into the store (golden_record_state, the *_source tables) find
# a batch's rows by key: a lookup per change (LATERAL ... LIMIT 1) or an index scan for an
# array of ids (= ANY (ARRAY(...))). Written as plain joins, the planner, which never has
# statistics for the temporary tables and guesses them at hundreds of rows, hashed the whole
# table instead: each batch of the steady benchmark (~20 changes) scanned all of
# golden_record_state and person_source, 10.5 and 7.9 ms of PostgreSQL a batch on a store of
# 38,000 records, growing with the store (docs/BENCHMARKS.md, session 11). The forms below
# leave the planner no join to hash; tests/integration/test_sink_store.py checks each plan.
@cache
def statements_for(table: EntityTable) -> TableStatements:
    name, key = table.table, table.id_column
    # "case" is a reserved word: quote the table names, alias them as target in statements.
    target, sources = f'{SCHEMA}."{name}"', f'{SCHEMA}."{name}_source"'
    incoming, accepted = f"incoming_{name}", f"accepted_{name}"
    incoming_sources = f"incoming_{name}_source"
    lineage = ("lineage",) if table.has_lineage else ()
    data_columns = (*(column.name for column in table.columns), "agencies", "source_count",
                    *lineage)
    data_values = (
        *(_column_value(column) for column in table.columns), "i.agencies", "i.source_count",
        *(("coalesce(i.record -> 'lineage', '[]')",) if lineage else ()),
    )
    record_type = ", ".join(f"{column.name} {column.sql_type}" for column in table.columns)
    return TableStatements(
        create_temporary=(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {incoming} ("
            + ", ".join(f"{c} {t}" for c, t in zip(INCOMING_COLUMNS, INCOMING_TYPES, strict=True))
            + ")",
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {accepted} (golden_id uuid PRIMARY KEY,"
            " golden_version bigint, state text, merged_into uuid)",
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {incoming_sources} (golden_id uuid,"
            " golden_version bigint, agency_id text, source_record_id text,"
            " source_version bigint, event_time timestamptz, deleted boolean,"
            " quality_issues jsonb, retention_until date, legal_basis text, consent_ref text)",
        ),
        copy_incoming=f"COPY {incoming} ({', '.join(INCOMING_COLUMNS)}) FROM STDIN",
        # A change is accepted when it is newer than what the store holds. A tombstone also
        # removes a live record; when it carries the version of an earlier change of its
        # batch (see GoldenRows), it first counts as that change: a merge then survives it,
        # exactly as if the two changes had come in two batches.
        accept=(
            f"INSERT INTO {accepted} (golden_id, golden_version, state, merged_into)"
            " SELECT i.golden_id,"
            " CASE WHEN n.newer THEN i.golden_version ELSE s.golden_version END,"
            f" CASE WHEN i.state <> '{DELETED}' THEN i.state"
            f" WHEN n.newer AND i.merged_into IS NOT NULL THEN '{MERGED}'"
            f" ELSE '{DELETED}' END,"
            f" CASE WHEN i.state <> '{DELETED}' OR n.newer THEN i.merged_into END"
            f" FROM {incoming} AS i"
            # LIMIT 1 (the key gives one row at most) keeps it a lookup per change (above)
            " LEFT JOIN LATERAL (SELECT s.golden_id, s.golden_version, s.state"
            f" FROM {SCHEMA}.golden_record_state AS s"
            f" WHERE s.entity = '{table.entity}' AND s.golden_id = i.golden_id LIMIT 1) AS s"
            " ON true"
            " CROSS JOIN LATERAL (SELECT i.golden_version IS NOT NULL AND (s.golden_id IS NULL"
            " OR i.golden_version > s.golden_version) AS newer) AS n"
            f" WHERE n.newer OR (i.state = '{DELETED}' AND s.state = '{LIVE}')"
            " RETURNING state"
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
            f"DELETE FROM {target} AS t WHERE t.{key} = ANY (ARRAY("
            f"SELECT golden_id FROM {accepted} WHERE state <> '{LIVE}'))"
        ),
        # The source records the accepted live changes list, unpacked once.
        collect_sources=(
            f"INSERT INTO {incoming_sources} (golden_id, golden_version, agency_id,"
            " source_record_id, source_version, event_time, deleted, quality_issues,"
            " retention_until, legal_basis, consent_ref)"
            " SELECT i.golden_id, i.golden_version, s.agency_id, s.source_record_id,"
            " s.source_version,"
            " s.event_time, coalesce(s.deleted, false), coalesce(s.quality_issues, '[]'),"
            " s.retention_until, s.legal_basis, s.consent_ref"
            f" FROM {incoming} AS i JOIN {accepted} AS a USING (golden_id)"
            f" CROSS JOIN LATERAL jsonb_to_recordset(i.record -> 'sources') AS {_SOURCE_FIELDS}"
            f" WHERE a.state = '{LIVE}'"
        ),
        # Source records an accepted change no longer lists leave its golden record (all of
        # them, for a tombstone or a merge, which list none).
        delete_dropped_sources=(
            f"DELETE FROM {sources} AS t"
            f" WHERE t.{key} = ANY (ARRAY(SELECT golden_id FROM {accepted})) AND NOT EXISTS ("
            f" SELECT FROM {incoming_sources} AS n WHERE n.golden_id = t.{key}"
            " AND n.agency_id = t.agency_id AND n.source_record_id = t.source_record_id)"
        ),
        upsert=(
            f"INSERT INTO {target} AS target ({key}, golden_version, {', '.join(data_columns)})"
            f" SELECT i.golden_id, i.golden_version, {', '.join(data_values)}"
            f" FROM {incoming} AS i JOIN {accepted} AS a USING (golden_id)"
            f" CROSS JOIN LATERAL jsonb_to_record(i.record) AS r({record_type})"
            f" WHERE a.state = '{LIVE}'"
            f" ON CONFLICT ({key}) DO UPDATE SET golden_version = excluded.golden_version,"
            f" {', '.join(f'{column} = excluded.{column}' for column in data_columns)}"
            " WHERE excluded.golden_version > target.golden_version"
        ),
        # A source record belongs to the newest golden record that lists it. Two records of
        # one batch may claim it (it moved between golden records): the one with the newer
        # golden_version wins, and one INSERT never touches a row twice. Across batches a
        # claim moves the source away from another golden record only when it is at least
        # as new as that record's latest change (golden_record_state, already updated for
        # this batch): golden ids live on different partitions, so an older change of the
        # record the source left can arrive after the newer one that took it, and must not
        # take it back (its merge would then drop the source with it).
        upsert_sources=(
            f"INSERT INTO {sources} AS target (agency_id, source_record_id, {key},"
            " source_version, event_time, deleted, quality_issues, retention_until,"
            " legal_basis, consent_ref)"
            " SELECT DISTINCT ON (agency_id, source_record_id) agency_id, source_record_id,"
            f" golden_id, source_version, event_time, deleted, quality_issues, retention_until,"
            " legal_basis, consent_ref"
            f" FROM {incoming_sources}"
            " ORDER BY agency_id, source_record_id, source_version DESC, golden_version DESC,"
            " golden_id"
            f" ON CONFLICT (agency_id, source_record_id) DO UPDATE SET {key} = excluded.{key},"
            " source_version = excluded.source_version, event_time = excluded.event_time,"
            " deleted = excluded.deleted, quality_issues = excluded.quality_issues,"
            " retention_until = excluded.retention_until, legal_basis = excluded.legal_basis,"
            " consent_ref = excluded.consent_ref"
            " WHERE excluded.source_version >= target.source_version"
            # (the claimant's own state row holds its version: only accepted changes claim)
            f" AND (excluded.{key} = target.{key} OR ("
            f" SELECT c.golden_version FROM {SCHEMA}.golden_record_state AS c"
            f" WHERE c.entity = '{table.entity}' AND c.golden_id = excluded.{key}) >= coalesce(("
            f" SELECT o.golden_version FROM {SCHEMA}.golden_record_state AS o"
            f" WHERE o.entity = '{table.entity}' AND o.golden_id = target.{key}), -1))"
            f" AND (excluded.{key}, excluded.source_version, excluded.event_time,"
            f" excluded.deleted, excluded.quality_issues, excluded.retention_until,"
            " excluded.legal_basis, excluded.consent_ref)"
            f" IS DISTINCT FROM (target.{key}, target.source_version, target.event_time,"
            " target.deleted, target.quality_issues, target.retention_until,"
            " target.legal_basis, target.consent_ref)"
            # What was written, for the freshness metric: date_part gives a float (extract
            # would give a numeric, slower to read).
            " RETURNING date_part('epoch', target.event_time)"
        ),
        empty_temporary=tuple(f"DELETE FROM {temporary}"
                              for temporary in (incoming, accepted, incoming_sources)),
        truncate_temporary=f"TRUNCATE {incoming}, {accepted}, {incoming_sources}",
    )


_INCOMING_MATCH_DECISIONS = "incoming_match_decision"  # the session's temporary table
_CREATE_MATCH_DECISIONS = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_INCOMING_MATCH_DECISIONS} ("
    + ", ".join(f"{name} {sql_type}" for name, sql_type in MATCH_DECISION_COLUMNS)
    + ")"
)
_COPY_MATCH_DECISIONS = (
    f"COPY {_INCOMING_MATCH_DECISIONS} ("
    + ", ".join(name for name, _ in MATCH_DECISION_COLUMNS) + ") FROM STDIN"
)
_INSERT_MATCH_DECISIONS = (
    f"INSERT INTO {SCHEMA}.match_decision ("
    + ", ".join(name for name, _ in MATCH_DECISION_COLUMNS)
    + ") SELECT " + ", ".join(name for name, _ in MATCH_DECISION_COLUMNS)
    + f" FROM {_INCOMING_MATCH_DECISIONS} ON CONFLICT DO NOTHING"
)


# --- the I/O shell -----------------------------------------------------------------------------


# The temporary tables are emptied with DELETE after each batch, not TRUNCATE: a TRUNCATE gives
# each table and index a new file and catalog row, and so also throws away the session's
# prepared plans of every statement that reads them. Measured on the 2-core machine against
# the local stack's PostgreSQL (three small temporary tables, one transaction each): TRUNCATE
# 4.0-4.5 ms of the backend's CPU and 15-20 ms of wall time, DELETE 0.2-0.4 ms and 0.8-1.6
# ms. DELETE leaves the dead rows behind (temporary tables are never autovacuumed: 20,000
# batches of ten rows grew one to 23 MB, and its scans fourfold), so every
# ``TRUNCATE_TEMPORARY_EVERY`` batches the writer truncates them between two batches.
TRUNCATE_TEMPORARY_EVERY = 200


def truncate_temporary(connection: psycopg.Connection, tables: Iterable[EntityTable]) -> None:
    """Give the session's temporary tables back their space (outside a batch)."""
    with connection.transaction():
        for table in tables:
            connection.execute(statements_for(table).truncate_temporary)
        connection.execute(f"TRUNCATE {_INCOMING_MATCH_DECISIONS}")


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
) -> Written:
    """Apply one entity's changes (at most one per golden id) inside the open transaction."""
    if not changes:
        return Written()
    statements = statements_for(table)
    records, sources = table.table, f"{table.table}_source"
    rows = {records: 0, sources: 0}
    event_times: list[float] = []
    with connection.cursor() as cursor:
        copy_rows(cursor, statements.copy_incoming, incoming_rows(changes))
        accepted_states = [state for (state,) in cursor.execute(statements.accept)]
        if accepted_states:
            cursor.execute(statements.record_state)
            # Tombstones and merges are rare: skip the scan of the target when there are none.
            if any(state != LIVE for state in accepted_states):
                rows[records] += cursor.execute(statements.delete_retired).rowcount
            cursor.execute(statements.collect_sources)
            rows[sources] += cursor.execute(statements.delete_dropped_sources).rowcount
            rows[records] += cursor.execute(statements.upsert).rowcount
            cursor.execute(statements.upsert_sources)
            event_times = [seconds for (seconds,) in cursor if seconds is not None]
            rows[sources] += cursor.rowcount
        # Emptied here rather than ON COMMIT: a retry of part of a batch reuses them in one
        # transaction, and a rollback restores them to this empty state anyway.
        for statement in statements.empty_temporary:
            cursor.execute(statement)
    return Written(len(changes), len(accepted_states), rows, tuple(event_times))


REFUSALS = (psycopg.errors.DataError, psycopg.errors.IntegrityError)


def write_isolating(
    connection: psycopg.Connection, write: Callable[[list[T]], None], items: list[T]
) -> list[tuple[T, psycopg.Error]]:
    """Write ``items`` with ``write`` inside the open transaction, leaving out the ones
    PostgreSQL refuses (a constraint, a value out of range): halves are retried in
    savepoints, so k refused items among n cost about k * log2(n) attempts, not n."""
    try:
        with connection.transaction():
            write(items)
        return []
    except REFUSALS as error:
        if len(items) == 1:
            return [(items[0], error)]
    middle = len(items) // 2
    return (write_isolating(connection, write, items[:middle])
            + write_isolating(connection, write, items[middle:]))


def write_match_decisions(connection: psycopg.Connection, rows: Sequence[Row]) -> Written:
    if not rows:
        return Written()
    with connection.cursor() as cursor:
        copy_rows(cursor, _COPY_MATCH_DECISIONS, rows)
        inserted = cursor.execute(_INSERT_MATCH_DECISIONS).rowcount
        cursor.execute(f"DELETE FROM {_INCOMING_MATCH_DECISIONS}")
    # A decision already stored (a replay) is skipped by ON CONFLICT: not accepted.
    return Written(len(rows), inserted, {"match_decision": inserted})


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


def copy_rows(cursor: psycopg.Cursor, statement: str, rows: Iterable[Row]) -> None:
    data = copy_text(rows)
    if not data:
        return
    with cursor.copy(statement) as copy:
        copy.write(data)
