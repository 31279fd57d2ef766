"""Change capture from a PostgreSQL table of an agency's own system, by watermark.

Rows are read in ``(watermark column, primary key)`` order after the last watermark whose
events Kafka acknowledged: the primary key breaks ties between rows changed in the same
instant, so none is skipped or read twice. The watermark is saved in the checkpoint only
after a whole batch was acknowledged, so a restart resumes exactly there. Deletes come from a
soft-delete column (the canonical ``deleted``) or from a periodic full comparison of the
table's keys with the checkpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import sql

from producers.canonical import KEEP_INVALID, Entity, columns_of
from producers.mapping import AgencyMapping
from producers.records import RowError, to_source_record
from producers.rejects import RejectsFile
from producers.tracker import ChangeTracker

WATERMARK_STATE = "watermark"
_WATERMARK_ALIAS = "__tipsync_watermark"
_KEY_ALIAS = "__tipsync_key"


class SourceTableError(RuntimeError):
    """The source table cannot be read (connection, missing table or column)."""


@dataclass(frozen=True)
class TableOptions:
    dsn: str
    table: str
    entity: Entity
    mapping: AgencyMapping | None
    watermark_column: str = "updated_at"
    primary_key: str | None = None
    follow: bool = False
    poll_interval: float = 5.0
    batch_size: int = 5_000
    full_compare_every: int = 0  # polls between full comparisons; 0: never


def _agency_column(options: TableOptions, canonical: str) -> str:
    if options.mapping is not None and canonical in options.mapping.columns:
        return options.mapping.columns[canonical]
    return canonical


def _table_identifier(table: str) -> sql.Identifier:
    return sql.Identifier(*table.split("."))


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ";".join(_as_text(item) for item in value)
    return str(value)


def _batch_query(options: TableOptions, resume: bool) -> sql.Composed:
    watermark = sql.Identifier(_agency_column(options, options.watermark_column))
    key = sql.Identifier(options.primary_key or _agency_column(options, "source_record_id"))
    condition = (
        sql.SQL("({w}, {k}) > (%s, %s)").format(w=watermark, k=key)
        if resume
        else sql.SQL("{w} IS NOT NULL").format(w=watermark)
    )
    return sql.SQL(
        "SELECT *, {w}::text AS {wa}, {k}::text AS {ka} FROM {t} WHERE {c} "
        "ORDER BY {w}, {k} LIMIT %s"
    ).format(
        w=watermark,
        k=key,
        wa=sql.Identifier(_WATERMARK_ALIAS),
        ka=sql.Identifier(_KEY_ALIAS),
        t=_table_identifier(options.table),
        c=condition,
    )


def produce_table(
    options: TableOptions,
    tracker: ChangeTracker,
    rejects: RejectsFile,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Publish the table's changes since the checkpoint; with ``follow``, keep polling."""
    try:
        connection = psycopg.connect(options.dsn, autocommit=True)
    except psycopg.Error as error:
        raise SourceTableError(
            f"cannot connect to the source database ({str(error).strip()}); check --sql"
        ) from None
    read = 0
    polls = 0
    with connection:
        while not stop():
            polls += 1
            batch = _read_batch(connection, options, tracker)
            for row in batch:
                read += 1
                _offer_row(row, read, options, tracker, rejects)
                tracker.pump()
            if batch:
                last = batch[-1]
                tracker.finish(state={WATERMARK_STATE: [last[_WATERMARK_ALIAS], last[_KEY_ALIAS]]})
            if options.full_compare_every and polls % options.full_compare_every == 0:
                tracker.delete_missing(_all_keys(connection, options), options.entity)
                tracker.finish()
            if len(batch) == options.batch_size:
                continue  # more rows are waiting: no pause
            if not options.follow:
                break
            time.sleep(options.poll_interval)
    return read


def _read_batch(
    connection: psycopg.Connection[Any], options: TableOptions, tracker: ChangeTracker
) -> list[dict[str, Any]]:
    watermark = tracker.store.state(WATERMARK_STATE)
    query = _batch_query(options, resume=watermark is not None)
    parameters = [*watermark, options.batch_size] if watermark else [options.batch_size]
    try:
        with connection.cursor(row_factory=psycopg.rows.dict_row) as cursor:
            cursor.execute(query, parameters)
            return list(cursor.fetchall())
    except psycopg.Error as error:
        raise SourceTableError(
            f"cannot read table {options.table} ({str(error).strip()}); check --table, "
            "--watermark-column and --primary-key"
        ) from None


def _all_keys(connection: psycopg.Connection[Any], options: TableOptions) -> set[str]:
    key = sql.Identifier(options.primary_key or _agency_column(options, "source_record_id"))
    query = sql.SQL("SELECT {k}::text FROM {t}").format(k=key, t=_table_identifier(options.table))
    with connection.cursor() as cursor:
        cursor.execute(query)
        return {row[0].strip() for row in cursor}


def _offer_row(
    row: dict[str, Any],
    number: int,
    options: TableOptions,
    tracker: ChangeTracker,
    rejects: RejectsFile,
) -> None:
    values = {
        column: _as_text(value)
        for column, value in row.items()
        if column not in (_WATERMARK_ALIAS, _KEY_ALIAS)
    }
    mapping = options.mapping
    canonical = mapping.translate(values) if mapping else dict(values)
    if options.primary_key and not canonical.get("source_record_id"):
        canonical["source_record_id"] = row[_KEY_ALIAS]
    if mapping is None:
        # A source table has columns of its own (ids, audit fields): keep the canonical ones.
        known = set(columns_of(options.entity))
        canonical = {column: value for column, value in canonical.items() if column in known}
    try:
        record = to_source_record(
            options.entity, canonical, mapping.dates if mapping else None,
            mapping.invalid_value_policy if mapping else KEEP_INVALID,
        )
        tracker.offer(record)
    except RowError as error:
        original = json.dumps(values, ensure_ascii=False)
        rejects.add(number, original, f"primary key {row[_KEY_ALIAS]!r}: {error}")
        return
    rejects.flag(number, record.source_record_id, record.quality_issues)
