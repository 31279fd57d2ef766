"""The generated exports, read with the producer's own rules (no Kafka): every row is
accepted except the planted bad rows, and each planted row is rejected.

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


def rejected_rows(manifest: Manifest) -> dict[tuple[str, int], str]:
    """(file, row) -> the producer's reason, for every row its rules refuse."""
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
                if reason:
                    rejected[(relative, raw.number)] = reason
    return rejected


def test_only_the_planted_rows_are_rejected(data_set: Manifest) -> None:
    planted = {
        (bad["file"], bad["row"]): bad["reason"]
        for bad in map(json.loads, data_set.bad_rows.read_text().splitlines())
    }
    rejected = rejected_rows(data_set)
    unexpected = {key: rejected[key] for key in set(rejected) - set(planted)}
    missed = {key: planted[key] for key in set(planted) - set(rejected)}
    assert not unexpected, unexpected
    assert not missed, missed
    assert len(planted) == 72


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
