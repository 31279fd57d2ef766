"""Each agency's export shape, read from its mapping file and run backwards.

The mapping files under ``deploy/demo/mappings/`` are the single description of every agency
shape: the producer reads an export through them, and this module writes one through them
(column names, joined names, date formats, codes, delimiter, encoding). Generating from the
mapping, not from a second description, means the two can never disagree. An agency/entity
without a mapping file exports the canonical columns.

Canonical values handed to ``ExportShape.render`` are typed: ``str``; ``tuple[str, ...]`` for
list columns; ``PartialDate`` for a birth date known to the day, month or year; ``date``;
``datetime`` (aware); ``float``; ``bool`` (``deleted``); ``None`` when the agency does not know.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

MAPPINGS_FOLDER = Path(__file__).resolve().parent / "mappings"

# The canonical input columns of the cross-team contract, in the order a canonical export
# writes them (``deleted`` only where an agency flags deletions instead of omitting rows).
CANONICAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "person": (
        "source_record_id", "given_name", "middle_name", "family_name", "aliases",
        "date_of_birth", "sex", "citizenship", "trn", "nin", "passport_number",
        "passport_country", "phone", "email", "address", "parish", "role", "case_ref",
        "updated_at", "deleted",
    ),
    "case": (
        "source_record_id", "case_ref", "title", "status", "opened_on", "closed_on",
        "forms_of_exploitation", "parish", "summary", "updated_at", "deleted",
    ),
    "report": (
        "source_record_id", "channel", "received_at", "narrative", "parish", "case_ref",
        "updated_at", "deleted",
    ),
    "organisation": (
        "source_record_id", "name", "aliases", "registration_number", "org_type", "industry",
        "address", "parish", "phone", "email", "updated_at", "deleted",
    ),
    "location": (
        "source_record_id", "name", "address", "parish", "latitude", "longitude",
        "location_role", "updated_at", "deleted",
    ),
    "link": (
        "source_record_id", "from_entity", "from_record_id", "to_entity", "to_record_id",
        "link_role", "valid_from", "valid_to", "updated_at", "deleted",
    ),
}
LIST_COLUMNS = frozenset({"aliases", "citizenship", "phone", "email", "forms_of_exploitation"})
NAME_PARTS = ("given_name", "middle_name", "family_name")

# Jamaica has kept UTC-5 all year since 1983: times without an offset are local time.
JAMAICA_TIME = timezone(timedelta(hours=-5), "America/Jamaica")

PRECISION_RANK = {"YEAR": 0, "MONTH": 1, "DAY": 2}


class ShapeError(ValueError):
    """A mapping file the generator cannot write through; ``str()`` says what to fix."""


@dataclass(frozen=True)
class PartialDate:
    """A date known to the day, the month or only the year (``precision``)."""

    value: date
    precision: str  # DAY | MONTH | YEAR

    @property
    def iso(self) -> str:
        if self.precision == "YEAR":
            return f"{self.value.year:04d}"
        if self.precision == "MONTH":
            return f"{self.value.year:04d}-{self.value.month:02d}"
        return self.value.isoformat()


def format_precision(date_format: str) -> str:
    """How precise a date written with ``date_format`` is (as the producer reads it back)."""
    if "%d" in date_format or "%j" in date_format:
        return "DAY"
    if any(directive in date_format for directive in ("%m", "%b", "%B")):
        return "MONTH"
    return "YEAR"


Cell = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class ExportShape:
    """How one agency writes one entity: file format, header and a renderer per column."""

    agency: str
    entity: str
    format: str  # csv | jsonl
    delimiter: str
    encoding: str
    line_terminator: str
    header: tuple[str, ...]
    canonical_source: dict[str, str]  # agency column -> canonical column it carries
    mapping_path: Path | None
    mapping: dict[str, Any] | None
    _cells: tuple[Cell, ...] = field(repr=False, compare=False)

    @property
    def file_name(self) -> str:
        return f"{self.entity}.{'jsonl' if self.format == 'jsonl' else 'csv'}"

    def agency_column(self, canonical: str) -> str | None:
        """The agency column that carries ``canonical`` (a split column for a name part)."""
        for agency_column, source in self.canonical_source.items():
            if canonical in source.split("+"):
                return agency_column
        return None

    def carries(self, canonical: str) -> bool:
        return self.agency_column(canonical) is not None

    def constant(self, canonical: str) -> str | None:
        return (self.mapping or {}).get("constants", {}).get(canonical)

    def date_formats(self, canonical: str) -> list[str]:
        return list((self.mapping or {}).get("dates", {}).get(canonical, []))

    def codes(self, canonical: str) -> dict[str, str]:
        return dict((self.mapping or {}).get("codes", {}).get(canonical, {}))

    def render(self, row: Mapping[str, Any]) -> list[Any]:
        """The canonical row as this agency's cells, in header order: text for CSV; for
        JSON Lines, lists stay JSON arrays and unknown values are null."""
        cells = [cell(row) for cell in self._cells]
        if self.format == "jsonl":
            return cells
        return [
            "" if value is None else ";".join(value) if isinstance(value, list) else value
            for value in cells
        ]

    def encode_line(self, cells: list[Any]) -> str:
        """One JSON Lines line (CSV lines are written by the csv module)."""
        document = dict(zip(self.header, cells, strict=True))
        return json.dumps(document, ensure_ascii=False) + "\n"


def load_shape(agency: str, entity: str, folder: Path = MAPPINGS_FOLDER) -> ExportShape:
    """The shape of ``agency``'s ``entity`` export: its mapping file's, else canonical columns."""
    path = folder / f"{agency}.{entity}.yaml"
    if not path.is_file():
        return _canonical_shape(agency, entity)
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or document.get("agency") != agency or (
        document.get("entity") != entity
    ):
        raise ShapeError(
            f"mapping file {path} does not describe agency {agency!r}, entity {entity!r}; "
            "fix its agency: and entity: keys or rename the file <agency>.<entity>.yaml"
        )
    document = _as_text(document)
    return _mapped_shape(agency, entity, path, document)


def _as_text(document: dict[str, Any]) -> dict[str, Any]:
    # YAML reads 01 or 1 as numbers; the export holds codes as the text the file shows.
    for key in ("codes", "constants"):
        section = document.get(key) or {}
        document[key] = {
            str(column): (
                {str(code): str(meaning) for code, meaning in value.items()}
                if isinstance(value, dict) else str(value)
            )
            for column, value in section.items()
        }
    return document


def _canonical_shape(agency: str, entity: str) -> ExportShape:
    # Deletions leave a canonical export as a missing row, so it has no deleted column.
    header = tuple(column for column in CANONICAL_COLUMNS[entity] if column != "deleted")
    cells = tuple(_canonical_cell(column) for column in header)
    return ExportShape(
        agency=agency, entity=entity, format="csv", delimiter=",", encoding="utf-8",
        line_terminator="\n", header=header,
        canonical_source={column: column for column in header},
        mapping_path=None, mapping=None, _cells=cells,
    )


def _mapped_shape(
    agency: str, entity: str, path: Path, document: dict[str, Any]
) -> ExportShape:
    columns: dict[str, str] = dict(document.get("columns") or {})
    splits: dict[str, dict[str, Any]] = dict(document.get("split") or {})
    dates: dict[str, list[str]] = dict(document.get("dates") or {})
    codes: dict[str, dict[str, str]] = document["codes"]
    source: dict[str, str] = {agency_column: canonical for canonical, agency_column in
                              columns.items()}
    for agency_column, split in splits.items():
        # The split column stands in the header where its first name part would be.
        source[agency_column] = min(split["into"], key=CANONICAL_COLUMNS[entity].index)
    order = CANONICAL_COLUMNS[entity]
    header = tuple(sorted(source, key=lambda column: order.index(source[column])))
    cells: list[Cell] = []
    for agency_column in header:
        if agency_column in splits:
            cells.append(_split_cell(splits[agency_column], path, agency_column))
            continue
        canonical = source[agency_column]
        cells.append(
            _mapped_cell(canonical, dates.get(canonical), codes.get(canonical), path)
        )
    is_jsonl = document.get("format", "csv") == "jsonl"
    return ExportShape(
        agency=agency, entity=entity, format="jsonl" if is_jsonl else "csv",
        delimiter=str(document.get("delimiter", ",")),
        encoding=str(document.get("encoding", "utf-8")),
        # Spreadsheet exports saved on Windows end lines with CRLF; keep that where cp1252 is.
        line_terminator="\r\n" if str(document.get("encoding", "")).lower() == "cp1252"
        else "\n",
        header=header,
        canonical_source={
            column: ("+".join(splits[column]["into"]) if column in splits else source[column])
            for column in header
        },
        mapping_path=path, mapping=document, _cells=tuple(cells),
    )


def _canonical_cell(column: str) -> Cell:
    def cell(row: Mapping[str, Any]) -> Any:
        value = row.get(column)
        return value if type(value) is str else canonical_text(value)

    return cell


def canonical_text(value: Any) -> str:
    """A value as the canonical columns spell it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return ";".join(value)
    if isinstance(value, PartialDate):
        return value.iso
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.5f}"
    return str(value)


def _mapped_cell(
    canonical: str, formats: list[str] | None, codes: dict[str, str] | None, path: Path
) -> Cell:
    inverse: dict[str, str] = {}
    for code, meaning in (codes or {}).items():
        inverse.setdefault(meaning, code)  # the first code listed is the one the agency writes

    def encode(text: str) -> str:
        if not inverse:
            return text
        try:
            return inverse[text]
        except KeyError:
            raise ShapeError(
                f"mapping file {path}: codes.{canonical} has no code for {text!r}; add one"
            ) from None

    def cell(row: Mapping[str, Any]) -> Any:
        value = row.get(canonical)
        if value is None or value == ():
            return None
        kind = type(value)  # the common types first: this runs for every cell of every row
        if kind is str:
            return encode(value)
        if kind is tuple:
            return [encode(item) for item in value]
        if isinstance(value, bool):
            return encode("true" if value else "false")
        if isinstance(value, PartialDate):
            return _format_partial(value, formats)
        if isinstance(value, datetime):
            return _format_instant(value, formats)
        if isinstance(value, date):
            return value.strftime(formats[0]) if formats else value.isoformat()
        return encode(canonical_text(value))

    return cell


def _format_partial(value: PartialDate, formats: list[str] | None) -> str | None:
    if not formats:
        return value.iso
    # The most precise format that does not claim more than is known; none means the agency
    # cannot record this date at all (e.g. only a year, in a day-only field).
    best: str | None = None
    for date_format in formats:
        precision = format_precision(date_format)
        if PRECISION_RANK[precision] > PRECISION_RANK[value.precision]:
            continue
        if best is None or PRECISION_RANK[precision] > PRECISION_RANK[format_precision(best)]:
            best = date_format
    return value.value.strftime(best) if best else None


def _format_instant(value: datetime, formats: list[str] | None) -> str:
    if not formats:
        return canonical_text(value)
    return value.astimezone(JAMAICA_TIME).strftime(formats[0])


def _split_cell(split: dict[str, Any], path: Path, agency_column: str) -> Cell:
    style = split["style"]
    into = tuple(split["into"])
    if set(into) - set(NAME_PARTS):
        raise ShapeError(
            f"mapping file {path}: split.{agency_column} joins {into}; the generator joins "
            f"only {', '.join(NAME_PARTS)}"
        )

    def cell(row: Mapping[str, Any]) -> str:
        given = (row.get("given_name") or "") if "given_name" in into else ""
        middle = (row.get("middle_name") or "") if "middle_name" in into else ""
        family = (row.get("family_name") or "") if "family_name" in into else ""
        given_part = f"{given} {middle}" if middle else given
        if style == "family_comma_given":
            return f"{family}, {given_part}" if given_part else family
        return f"{given_part} {family}" if given_part else family

    return cell
