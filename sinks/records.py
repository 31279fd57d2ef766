"""From a decoded reconciled record (a plain dict) to the rows the store writes.

Pure functions: no Kafka, no database. A record that cannot become valid rows raises
``RecordError`` whose message names the field and the problem but never the value, because
the message travels in dead-letter headers and logs, where personal data must not go.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

# What became of a golden record with this change; the values of golden_record_state.state.
LIVE = "live"
MERGED = "merged"
DELETED = "deleted"


class RecordError(ValueError):
    """A reconciled record the store cannot hold; the message is free of personal data."""


Row = tuple[Any, ...]
Converter = Callable[[Any, str], Any]


# --- field converters: (value, field name) -> value the COPY encoder understands ----------


def to_text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(f"field {field} is a {type(value).__name__}, expected a string")
    if "\x00" in value:
        raise RecordError(f"field {field} contains a NUL character, which PostgreSQL cannot store")
    return value


def to_text_list(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise RecordError(f"field {field} is a {type(value).__name__}, expected a list of strings")
    items = [to_text(item, field) for item in value]
    if any(item is None for item in items):
        raise RecordError(f"field {field} contains a null item, expected only strings")
    return items  # type: ignore[return-value]


def to_date(value: Any, field: str) -> date | None:
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise RecordError(f"field {field} is not a date (expected YYYY-MM-DD)") from None
    raise RecordError(f"field {field} is a {type(value).__name__}, expected a YYYY-MM-DD date")


def to_timestamp(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        # Avro timestamp-millis decode to UTC; a naive value is taken as UTC, never as local.
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise RecordError(f"field {field} is not an ISO 8601 timestamp") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise RecordError(f"field {field} is a {type(value).__name__}, expected a timestamp")


def to_uuid(value: Any, field: str) -> str | None:
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


def to_bigint(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"field {field} is a {type(value).__name__}, expected an integer")
    if not -(2**63) <= value < 2**63:
        raise RecordError(f"field {field} does not fit a 64-bit integer")
    return value


def to_double(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"field {field} is a {type(value).__name__}, expected a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise RecordError(f"field {field} is not a finite number")
    return float(value)


def to_boolean(value: Any, field: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise RecordError(f"field {field} is a {type(value).__name__}, expected true or false")


def to_json(value: Any, field: str) -> str:
    try:
        text = json.dumps(value, default=_json_default, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        raise RecordError(f"field {field} cannot be written as JSON") from None
    if "\\u0000" in text:
        raise RecordError(f"field {field} contains a NUL character, which PostgreSQL cannot store")
    return text


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date | uuid.UUID):
        return str(value)
    raise TypeError(type(value).__name__)


def to_enum(symbols: Sequence[str]) -> Converter:
    allowed = frozenset(symbols)

    def convert(value: Any, field: str) -> str | None:
        text = to_text(value, field)
        if text is not None and text not in allowed:
            raise RecordError(f"field {field} is not one of {', '.join(symbols)}")
        return text

    return convert


def to_enum_list(symbols: Sequence[str]) -> Converter:
    single = to_enum(symbols)

    def convert(value: Any, field: str) -> list[str]:
        return [single(item, field) for item in to_text_list(value, field)]

    return convert


# --- the tables ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of an entity table filled from the record field of the same name."""

    name: str
    sql_type: str
    convert: Converter
    field: str | None = None  # the record's field name when it differs from the column's

    @property
    def source_field(self) -> str:
        return self.field or self.name


@dataclass(frozen=True)
class EntityTable:
    """How one reconciled entity is stored: ``reconciled.<table>`` keyed by ``<id_column>``,
    plus ``reconciled.<table>_source``; the golden record's own fields are ``columns``."""

    entity: str
    table: str
    id_column: str
    columns: tuple[Column, ...]
    has_lineage: bool = False


@dataclass(frozen=True)
class SourceRow:
    golden_id: str
    agency_id: str
    source_record_id: str
    source_version: int
    event_time: datetime | None
    deleted: bool


@dataclass(frozen=True)
class GoldenRows:
    """Everything one reconciled change writes.

    ``row`` holds the values of ``EntityTable.columns`` (empty unless ``state`` is live);
    ``golden_version`` is None only for a tombstone.
    """

    entity: str
    golden_id: str
    state: str
    golden_version: int | None
    merged_into: str | None = None
    row: Row = ()
    agencies: tuple[str, ...] = ()
    source_count: int = 0
    sources: tuple[SourceRow, ...] = ()
    lineage_json: str | None = None


def golden_rows(table: EntityTable, golden_id: str, record: Mapping[str, Any] | None) -> GoldenRows:
    """The rows of one reconciled change; ``record`` None is a tombstone."""
    if record is None:
        return GoldenRows(table.entity, golden_id, DELETED, None)
    golden_version = to_bigint(record.get("golden_version"), "golden_version")
    if golden_version is None:
        raise RecordError("field golden_version is missing; every golden record carries one")
    merged_into = to_uuid(record.get("merged_into"), "merged_into")
    if merged_into is not None:
        if merged_into == golden_id:
            raise RecordError("field merged_into names the record itself; a record cannot merge"
                              " into itself")
        return GoldenRows(table.entity, golden_id, MERGED, golden_version, merged_into)
    row = tuple(column.convert(record.get(column.source_field), column.source_field)
                for column in table.columns)
    sources = tuple(_source_rows(golden_id, record.get("sources")))
    live_sources = [source for source in sources if not source.deleted]
    agencies = tuple(sorted({source.agency_id for source in live_sources}))
    lineage = _lineage(record.get("lineage")) if table.has_lineage else None
    return GoldenRows(
        table.entity, golden_id, LIVE, golden_version, None, row, agencies, len(live_sources),
        sources, lineage,
    )


def _source_rows(golden_id: str, sources: Any) -> list[SourceRow]:
    if sources is None:
        return []
    if not isinstance(sources, list):
        raise RecordError("field sources is not a list")
    rows = []
    for index, source in enumerate(sources):
        field = f"sources[{index}]"
        if not isinstance(source, Mapping):
            raise RecordError(f"field {field} is not a record")
        agency_id = to_text(source.get("agency_id"), f"{field}.agency_id")
        record_id = to_text(source.get("source_record_id"), f"{field}.source_record_id")
        version = to_bigint(source.get("source_version"), f"{field}.source_version")
        if agency_id is None or record_id is None or version is None:
            raise RecordError(
                f"field {field} lacks agency_id, source_record_id or source_version; each"
                " source names all three"
            )
        rows.append(SourceRow(
            golden_id, agency_id, record_id, version,
            to_timestamp(source.get("event_time"), f"{field}.event_time"),
            bool(to_boolean(source.get("deleted"), f"{field}.deleted")),
        ))
    return rows


LINEAGE_FIELDS = ("field", "agency_id", "source_record_id", "source_version", "event_time")


def _lineage(lineage: Any) -> str:
    if lineage is None:
        return "[]"
    if not isinstance(lineage, list):
        raise RecordError("field lineage is not a list")
    entries = []
    for index, entry in enumerate(lineage):
        if not isinstance(entry, Mapping):
            raise RecordError(f"field lineage[{index}] is not a record")
        event_time = to_timestamp(entry.get("event_time"), f"lineage[{index}].event_time")
        entries.append({
            "field": to_text(entry.get("field"), f"lineage[{index}].field"),
            "agency_id": to_text(entry.get("agency_id"), f"lineage[{index}].agency_id"),
            "source_record_id": to_text(
                entry.get("source_record_id"), f"lineage[{index}].source_record_id"
            ),
            "source_version": to_bigint(
                entry.get("source_version"), f"lineage[{index}].source_version"
            ),
            "event_time": event_time.isoformat() if event_time else None,
        })
    return to_json(entries, "lineage")
