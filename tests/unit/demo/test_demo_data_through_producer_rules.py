"""The generated exports, read with the producer's own rules (no Kafka): every row is
accepted except the planted bad rows; each planted row that cannot be identified or is not a
record is rejected, and each one whose only fault is an invalid optional value is kept with
exactly that value flagged.

This is the unit-level half of the demo's promise that "nothing is left in the DLQ except
the deliberately bad rows"; the integration test does the same through the real pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.demo.generate import Manifest, generate
from producers.canonical import Entity
from producers.mapping import load_mapping
from producers.readers import read_csv, read_jsonl
from producers.records import RowError, to_source_record


@pytest.fixture(scope="module")
def data_set(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    return generate(tmp_path_factory.mktemp("demo") / "data", 600, seed=23, updates=True)


def rejected_rows(
    manifest: Manifest, flagged: dict[tuple[str, int], set[str]] | None = None
) -> dict[tuple[str, int], str]:
    """(file, row) -> the producer's reason, for every row its rules refuse; ``flagged``
    receives (file, row) -> the fields left out of every row kept with quality issues."""
    rejected: dict[tuple[str, int], str] = {}
    for file in manifest.files:
        mapping = load_mapping(file.mapping) if file.mapping else None
        relative = file.path.relative_to(manifest.out_dir).as_posix()
        seen: set[str] = set()
        with file.path.open("rb") as stream:
            if file.format == "jsonl":
                rows, _ = read_jsonl(stream, relative, mapping.encoding if mapping else "utf-8")
            else:
                header, rows, _ = read_csv(
                    stream, relative, mapping.delimiter if mapping else ",",
                    mapping.encoding if mapping else "utf-8",
                )
                assert not mapping or not mapping.missing_columns(header)
            for raw in rows:
                reason = raw.error
                if reason is None:
                    assert raw.values is not None
                    canonical = mapping.translate(raw.values) if mapping else raw.values
                    try:
                        record = to_source_record(
                            Entity(file.entity), canonical, mapping.dates if mapping else None
                        )
                    except RowError as error:
                        reason = str(error)
                    else:
                        if record.source_record_id in seen:
                            reason = "duplicate source_record_id"
                        seen.add(record.source_record_id)
                        if record.quality_issues and flagged is not None and not reason:
                            flagged[(relative, raw.number)] = {
                                field for field, _ in record.quality_issues
                            }
                if reason:
                    rejected[(relative, raw.number)] = reason
    return rejected


def test_only_the_planted_rows_are_rejected_or_flagged(data_set: Manifest) -> None:
    truth = list(map(json.loads, data_set.bad_rows.read_text().splitlines()))
    assert len(truth) == 72
    planted = {
        (bad["file"], bad["row"]): bad["reason"] for bad in truth if bad["outcome"] == "rejected"
    }
    planted_flagged = {
        (bad["file"], bad["row"]): {bad["field"]} for bad in truth if bad["outcome"] == "flagged"
    }
    # Each agency's bad date, unknown sex code and oversized name: kept, flagged (36 rows).
    assert len(planted_flagged) == 36
    assert {bad["reason"] for bad in truth if bad["outcome"] == "flagged"} == {
        "unparseable_date", "unknown_code", "oversized_field"
    }
    flagged: dict[tuple[str, int], set[str]] = {}
    rejected = rejected_rows(data_set, flagged)
    unexpected = {key: rejected[key] for key in set(rejected) - set(planted)}
    missed = {key: planted[key] for key in set(planted) - set(rejected)}
    assert not unexpected, unexpected
    assert not missed, missed
    assert flagged == planted_flagged


def test_reading_does_not_depend_on_where_the_data_set_lies(
    data_set: Manifest, tmp_path: Path
) -> None:
    moved = tmp_path / "moved"
    data_set.out_dir.rename(moved)
    try:
        reloaded = Manifest.load(moved)
        assert all(file.path.is_file() for file in reloaded.files)
    finally:
        moved.rename(data_set.out_dir)
