"""Change capture from an agency's export file (CSV or JSON Lines).

Reads every row, rejects the bad ones with their reason, publishes the records that changed
since the last acknowledged run, and with ``full_export`` DELETEs the records that left the
export. Nothing here knows Kafka: it hands records to the ``ChangeTracker``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from producers.canonical import KEEP_INVALID, Entity, columns_of
from producers.mapping import AgencyMapping
from producers.normalise import FieldError, clean_text, record_id
from producers.readers import FileError, RawRow, open_export, read_csv, read_jsonl
from producers.records import RowError, to_source_record
from producers.rejects import RejectsFile
from producers.tracker import ChangeTracker


@dataclass(frozen=True)
class FileOptions:
    path: Path
    entity: Entity
    mapping: AgencyMapping | None
    full_export: bool
    progress: bool


def export_format(path: Path, mapping: AgencyMapping | None) -> Literal["csv", "jsonl"]:
    if mapping is not None:
        return mapping.format
    return "jsonl" if path.suffix.lower() in {".jsonl", ".ndjson", ".json"} else "csv"


def produce_file(options: FileOptions, tracker: ChangeTracker, rejects: RejectsFile) -> int:
    """Publish the changes of one export; returns the number of rows read."""
    mapping = options.mapping
    fmt = export_format(options.path, mapping)
    encoding = mapping.encoding if mapping else "utf-8"
    name = options.path.name
    with open_export(options.path) as stream:
        if fmt == "csv":
            header, rows, lines = read_csv(
                stream, name, mapping.delimiter if mapping else ",", encoding
            )
            _check_header(header, options.entity, mapping, name)
        else:
            id_key = mapping.columns.get("source_record_id") if mapping else None
            rows, lines = read_jsonl(stream, name, encoding, id_key or "source_record_id")
        total = options.path.stat().st_size
        bar = tqdm(
            total=total, unit="B", unit_scale=True, desc=name, file=sys.stderr,
            disable=not (options.progress and sys.stderr.isatty()),
        )
        read = 0
        # Ids as published (normalise.record_id), each with the row that first had it.
        seen: dict[str, int] = {}
        # Ids of rows refused for their id itself, in the spelling an earlier version
        # published them in: a refused row is still in the export, so it is not deleted.
        refused_ids: set[str] = set()
        canonical_columns = frozenset(columns_of(options.entity))
        for raw in rows:
            read += 1
            _produce_row(raw, options, tracker, rejects, seen, refused_ids, canonical_columns)
            tracker.pump()
            if read % 2_000 == 0:
                bar.update(lines.bytes_read - bar.n)
        bar.update(lines.bytes_read - bar.n)
        bar.close()
    if options.full_export:
        tracker.delete_missing(set(seen) | refused_ids, options.entity)
    return read


def _produce_row(
    raw: RawRow,
    options: FileOptions,
    tracker: ChangeTracker,
    rejects: RejectsFile,
    seen: dict[str, int],
    refused_ids: set[str],
    canonical_columns: frozenset[str],
) -> None:
    if raw.values is None:
        rejects.add(raw.number, raw.original, raw.error or "the row cannot be read")
        return
    mapping = options.mapping
    canonical = mapping.translate(raw.values) if mapping else raw.values
    if mapping is None and not canonical_columns.issuperset(canonical):
        # A CSV header was checked once; a JSON Lines object can bring new keys on any line.
        unknown = sorted(set(canonical) - canonical_columns)
        if unknown:
            rejects.add(
                raw.number, raw.original,
                f"{', '.join(unknown)} {'is not a' if len(unknown) == 1 else 'are not'} "
                f"canonical {options.entity.value} column{'s' if len(unknown) > 1 else ''}; "
                "rename them or write a mapping file (--mapping)",
            )
            return
    # The id is normalised once, here, exactly as to_source_record publishes it: the duplicate
    # check, the ids a full export keeps and the checkpoint all compare the same text.
    raw_id = canonical.get("source_record_id") or ""
    try:
        source_record_id = record_id("source_record_id", raw_id)
    except FieldError:
        # to_source_record refuses the row and names this problem with the row's others.
        refused_ids.add(clean_text(raw_id))
        source_record_id = ""
    if source_record_id in seen:
        rejects.add(
            raw.number, raw.original,
            f"source_record_id appears again (first at row {seen[source_record_id]}, again at "
            f"row {raw.number}; ids that differ only in spaces or Unicode composition are one "
            "id); keep one row per record",
        )
        return
    if source_record_id:
        # A bad row still counts as present: a full export must not DELETE it.
        seen[source_record_id] = raw.number
    try:
        record = to_source_record(
            options.entity, canonical, mapping.dates if mapping else None,
            mapping.invalid_value_policy if mapping else KEEP_INVALID,
        )
        tracker.offer(record)
    except RowError as error:
        rejects.add(raw.number, raw.original, str(error))
        return
    rejects.flag(raw.number, record.source_record_id, record.quality_issues)


def _check_header(
    header: list[str], entity: Entity, mapping: AgencyMapping | None, name: str
) -> None:
    if mapping is not None:
        missing = mapping.missing_columns(header)
        if missing:
            raise FileError(
                f"{name} has no column {', '.join(missing)}, which the mapping file reads; "
                f"the file's columns are {', '.join(header)}; fix the mapping's column names"
            )
        return
    canonical = columns_of(entity)
    unknown = [column for column in header if column not in canonical]
    if unknown:
        raise FileError(
            f"{name}: {', '.join(unknown)} {'is not a' if len(unknown) == 1 else 'are not'} "
            f"canonical {entity.value} column{'s' if len(unknown) > 1 else ''} (see "
            "docs/PRODUCERS.md); rename them, or describe the export in a mapping file "
            "and pass --mapping"
        )
    if "source_record_id" not in header:
        raise FileError(
            f"{name} has no source_record_id column; every row needs the record's id in your "
            "system"
        )
