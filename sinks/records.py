"""From a decoded reconciled record (a plain dict) to what the store writes.

Pure functions: no Kafka, no database. The golden record travels to PostgreSQL as one JSON
document per change; SQL spreads it over typed columns (``jsonb_to_record``). That keeps the
Python side to a few microseconds per change, and PostgreSQL parses on its own core.

The Avro schema already guarantees types, required fields and enum symbols, so only what
Avro cannot express is checked here: the golden version, ids that must be UUIDs, date
strings that must be real dates, and text PostgreSQL cannot hold (NUL). Whatever still
violates a table constraint is refused by PostgreSQL and dead-lettered by the consumer.

``RecordError`` messages name the field and the problem but never the value, because they
travel in dead-letter headers and logs, where personal data must not go.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson

# What became of a golden record with this change; the values of golden_record_state.state.
LIVE = "live"
MERGED = "merged"
DELETED = "deleted"


class RecordError(ValueError):
    """A reconciled record the store cannot hold; the message is free of personal data.

    ``reason`` is its dead-letter reason code (``schemas.dead_letters.REASONS``)."""

    def __init__(self, detail: str, reason: str = "invalid_record") -> None:
        super().__init__(detail)
        self.reason = reason


Row = tuple[Any, ...]
Check = Callable[[Any, str], object]


# --- checks: (value, field name) -> raise RecordError when the store cannot hold it -----------


def check_date(value: Any, field: str) -> date | None:
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise RecordError(f"field {field} is not a date (expected YYYY-MM-DD)") from None
    raise RecordError(f"field {field} is a {type(value).__name__}, expected a YYYY-MM-DD date")


def check_uuid(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise RecordError(f"field {field} is not a UUID") from None
    raise RecordError(f"field {field} is a {type(value).__name__}, expected a UUID")


def check_version(value: Any, field: str) -> int:
    if value is None:
        raise RecordError(f"field {field} is missing; every golden record carries one")
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"field {field} is a {type(value).__name__}, expected an integer")
    if not 0 <= value < 2**63:
        raise RecordError(f"field {field} is outside 0 .. 2^63-1")
    return value


def required(check: Check | None = None) -> Check:
    def check_required(value: Any, field: str) -> object:
        if value is None:
            raise RecordError(f"field {field} is missing; the contract requires it")
        return check(value, field) if check else value

    return check_required


def to_json(value: Any, field: str) -> bytes:
    """UTF-8 JSON that PostgreSQL's jsonb accepts (datetimes as ISO 8601, no NUL)."""
    try:
        text = orjson.dumps(value)
    except TypeError:
        raise RecordError(f"field {field} cannot be written as JSON") from None
    if b"\\u0000" in text:
        raise RecordError(
            f"a text value in {field} contains a NUL character, which PostgreSQL cannot store"
        )
    return text


# --- the tables ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of an entity table, filled from the record field of the same name."""

    name: str
    sql_type: str
    check: Check | None = None


@dataclass(frozen=True)
class EntityTable:
    """How one reconciled entity is stored: ``reconciled.<table>`` keyed by ``<id_column>``,
    plus ``reconciled.<table>_source``; the golden record's own fields are ``columns``."""

    entity: str
    table: str
    id_column: str
    columns: tuple[Column, ...]
    has_lineage: bool = False

    @property
    def checked_columns(self) -> tuple[Column, ...]:
        return tuple(column for column in self.columns if column.check is not None)


@dataclass(frozen=True)
class GoldenRows:
    """What one reconciled change writes: the record as JSON (empty unless ``state`` is
    live) and what the store derives from its sources.

    A tombstone (state deleted) has no version of its own; when the batch held an earlier
    change of the same record, it carries that change's ``golden_version`` and
    ``merged_into``, so that the store ends as if the two had been written one by one."""

    entity: str
    golden_id: str
    state: str
    golden_version: int | None
    merged_into: str | None = None
    record_json: bytes | None = None
    agencies: tuple[str, ...] = ()
    source_count: int = 0


def golden_rows(table: EntityTable, golden_id: str, record: Mapping[str, Any] | None) -> GoldenRows:
    """What one reconciled change writes; ``record`` None is a tombstone."""
    if record is None:
        return GoldenRows(table.entity, golden_id, DELETED, None)
    golden_version = check_version(record.get("golden_version"), "golden_version")
    merged_into = check_uuid(record.get("merged_into"), "merged_into")
    if merged_into is not None:
        if merged_into == golden_id:
            raise RecordError(
                "field merged_into names the record itself; a record cannot merge into itself"
            )
        return GoldenRows(table.entity, golden_id, MERGED, golden_version, merged_into)
    for column in table.checked_columns:
        assert column.check is not None
        column.check(record.get(column.name), column.name)
    agencies, source_count = _live_sources(record.get("sources"))
    return GoldenRows(
        table.entity, golden_id, LIVE, golden_version, None,
        to_json(record, f"the {table.entity} record"), agencies, source_count,
    )


def _live_sources(sources: Any) -> tuple[tuple[str, ...], int]:
    """The agencies that hold an undeleted source record, and how many such records."""
    if sources is None:
        return (), 0
    if not isinstance(sources, list):
        raise RecordError("field sources is not a list")
    agencies, count = set(), 0
    for index, source in enumerate(sources):
        if not isinstance(source, Mapping):
            raise RecordError(f"field sources[{index}] is not a record")
        if source.get("deleted"):
            continue
        agency_id, record_id = source.get("agency_id"), source.get("source_record_id")
        if not isinstance(agency_id, str) or not isinstance(record_id, str):
            raise RecordError(
                f"field sources[{index}] lacks agency_id or source_record_id; each source"
                " names both"
            )
        agencies.add(agency_id)
        count += 1
    return tuple(sorted(agencies)), count
