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
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import unquote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from producers.canonical import KEEP_INVALID, Entity, columns_of
from producers.mapping import AgencyMapping
from producers.normalise import FieldError, clean_text, record_id
from producers.records import RowError, to_source_record
from producers.rejects import RejectsFile
from producers.tracker import ChangeTracker

WATERMARK_STATE = "watermark"
_WATERMARK_ALIAS = "__tipsync_watermark"
_KEY_ALIAS = "__tipsync_key"


class SourceTableError(RuntimeError):
    """The source table cannot be read (connection, missing table or column)."""


# libpq parameters that hold a secret itself (passfile, sslkey and sslcert name files).
SECRET_PARAMETERS = frozenset({"password", "sslpassword"})
_URI_SCHEMES = ("postgresql://", "postgres://")
# One key = value pair of a libpq key/value string: a value is quoted ('...', with \' and
# \\ escapes) or runs to the next space (with \ escapes).
_PAIR = re.compile(r"""\s*([^\s=]+)\s*=\s*('(?:[^'\\]|\\.)*'|(?:[^\s\\]|\\.)*)""", re.DOTALL)


def _parse_dsn(dsn: str) -> dict[str, str]:
    try:
        return {key: str(value) for key, value in conninfo_to_dict(dsn).items()}
    except psycopg.Error as error:
        if any(secret in dsn.lower() for secret in SECRET_PARAMETERS):
            # libpq quotes the text it stumbled on, which may be a piece of the password.
            detail = "its parser's message is not shown, as it may quote the password"
        else:
            detail = str(error).strip()
        raise SourceTableError(
            f"--sql is neither a libpq key=value string nor a postgresql:// URI ({detail}); "
            "check its spelling, and quote a value that holds spaces as key='a b'"
        ) from None


def dsn_without_secrets(dsn: str) -> str:
    """``dsn`` as it may be written (a checkpoint's source name) or shown: no secret in it.

    The text of the same DSN written without its password, so the checkpoint of a database
    is found whether or not the DSN carries a password, and whichever: a DSN without a secret
    is returned as it is. Raises ``SourceTableError`` when it cannot be parsed.
    """
    parameters = _parse_dsn(dsn)
    if not SECRET_PARAMETERS & parameters.keys():
        return dsn
    wanted = {key: value for key, value in parameters.items() if key not in SECRET_PARAMETERS}
    stripped = _strip_uri(dsn) if dsn.startswith(_URI_SCHEMES) else _strip_pairs(dsn)
    if stripped is not None:
        try:
            if {k: str(v) for k, v in conninfo_to_dict(stripped).items()} == wanted:
                return stripped
        except psycopg.Error:
            pass
    # A spelling the text edit above does not follow: libpq's own, without the secrets.
    return make_conninfo(**wanted)


def _strip_uri(dsn: str) -> str | None:
    scheme, _, rest = dsn.partition("://")
    # As libpq reads it: user[:password] is what comes before an "@" met before any "/".
    before_path = rest.partition("/")[0]
    if "@" in before_path:
        user_info, _, rest = rest.partition("@")
        rest = f"{user_info.partition(':')[0]}@{rest}"
    path, question, query = rest.partition("?")
    kept = [
        item for item in query.split("&")
        if unquote(item.partition("=")[0]) not in SECRET_PARAMETERS
    ]
    query = "&".join(kept)
    return f"{scheme}://{path}{question if query else ''}{query}"


def _strip_pairs(dsn: str) -> str | None:
    kept: list[str] = []
    position = 0
    while position < len(dsn):
        match = _PAIR.match(dsn, position)
        if match is None or match.end() == position:
            if dsn[position:].strip():
                return None
            break
        if match.group(1) not in SECRET_PARAMETERS:
            kept.append(match.group(0))
        position = match.end()
    return "".join(kept).strip()


def _redacted(message: str, dsn: str) -> str:
    """A driver's message with any secret of ``dsn`` blanked out."""
    try:
        parameters = conninfo_to_dict(dsn)
    except psycopg.Error:
        if any(secret in dsn.lower() for secret in SECRET_PARAMETERS):
            return "the parser's message is not shown, as it may quote the password"
        return message
    for key in SECRET_PARAMETERS:
        secret = str(parameters.get(key) or "")
        if secret:
            message = message.replace(secret, "***")
    return message


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
            f"cannot connect to the source database ({_redacted(str(error).strip(), options.dsn)});"
            " check --sql"
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
    """Every record id of the table, as ``_offer_row`` publishes it (so as the checkpoint has it).

    The id is the column read as source_record_id when the table has one and it is not empty,
    else the primary key (as in ``_offer_row``), normalised by ``normalise.record_id``.
    """
    table = _table_identifier(options.table)
    key = sql.Identifier(options.primary_key or _agency_column(options, "source_record_id"))
    ids: set[str] = set()
    try:
        id_column = _id_column(connection, options)
        identifier = sql.Identifier(id_column) if id_column else sql.NULL
        query = sql.SQL("SELECT {i}, {k}::text FROM {t}").format(i=identifier, k=key, t=table)
        with connection.cursor() as cursor:
            cursor.execute(query)
            for value, key_text in cursor:
                raw = _as_text(value)
                if options.primary_key and not raw:
                    raw = key_text or ""
                try:
                    ids.add(record_id("source_record_id", raw))
                except FieldError:
                    # A row refused for its id is still in the table: keep what an earlier
                    # version published for it (control characters turned into spaces).
                    ids.add(clean_text(raw))
    except psycopg.Error as error:
        raise SourceTableError(
            f"cannot read the keys of table {options.table} ({str(error).strip()}); check "
            "--table and --primary-key"
        ) from None
    return ids


def _id_column(connection: psycopg.Connection[Any], options: TableOptions) -> str | None:
    """The table's column that ``_offer_row`` reads as source_record_id, if there is one."""
    if options.mapping is not None:
        return options.mapping.columns.get("source_record_id")
    query = sql.SQL("SELECT * FROM {t} LIMIT 0").format(t=_table_identifier(options.table))
    with connection.cursor() as cursor:
        cursor.execute(query)
        names = [column.name for column in cursor.description or ()]
    return "source_record_id" if "source_record_id" in names else None


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
