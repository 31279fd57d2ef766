"""The synthetic data generator: deterministic, truthful about itself, in every agency's shape."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from deploy.demo.generate import (
    BAD_ROW_KINDS,
    ExportFile,
    GenerateError,
    Manifest,
    generate,
)
from deploy.demo.world import AGENCIES

PEOPLE = 400


@pytest.fixture(scope="module")
def data_set(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    return generate(tmp_path_factory.mktemp("demo") / "data", PEOPLE, seed=11, updates=True)


def digests(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def read_rows(file: ExportFile) -> list[tuple[int, dict[str, str | None]]]:
    """(row number as the producer counts it, values) of every data row that parses."""
    mapping = yaml.safe_load(file.mapping.read_text()) if file.mapping else {}
    encoding = mapping.get("encoding", "utf-8")
    rows: list[tuple[int, dict[str, str | None]]] = []
    if file.format == "jsonl":
        for number, line in enumerate(file.path.read_text(encoding=encoding).splitlines(), 1):
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError:
                continue
        return rows
    with file.path.open(encoding=encoding, newline="") as stream:
        reader = csv.reader(stream, delimiter=mapping.get("delimiter", ","))
        header = next(reader)
        for number, cells in enumerate(reader, start=2):
            if len(cells) == len(header):
                rows.append((number, dict(zip(header, cells, strict=True))))
    return rows


def id_column(file: ExportFile) -> str:
    if not file.mapping:
        return "source_record_id"
    return yaml.safe_load(file.mapping.read_text())["columns"]["source_record_id"]


def bad_rows(manifest: Manifest) -> list[dict]:
    return [json.loads(line) for line in manifest.bad_rows.read_text().splitlines()]


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    first = generate(tmp_path / "first", 150, seed=5, updates=True)
    second = generate(tmp_path / "second", 150, seed=5, updates=True)
    assert digests(first.out_dir) == digests(second.out_dir)
    assert len(digests(first.out_dir)) > 40


def test_another_seed_gives_other_data(tmp_path: Path) -> None:
    first = generate(tmp_path / "first", 150, seed=5)
    second = generate(tmp_path / "second", 150, seed=6)
    assert (first.out_dir / "police-ctu/person.csv").read_bytes() != (
        second.out_dir / "police-ctu/person.csv").read_bytes()


def test_base_export_is_the_same_with_or_without_change_steps(tmp_path: Path) -> None:
    without = generate(tmp_path / "without", 200, seed=9).out_dir
    with_updates = generate(tmp_path / "with", 200, seed=9, updates=True).out_dir
    # The records that appear only in a change step are appended to the person truth.
    clusters = "truth/person_clusters.csv"
    base_files = set(digests(without)) - {"manifest.json", clusters}
    assert {name: digests(without)[name] for name in base_files} == {
        name: digests(with_updates)[name] for name in base_files
    }
    late = (with_updates / clusters).read_bytes()
    assert late.startswith((without / clusters).read_bytes())
    assert b",step-" in late


def test_every_person_record_is_in_the_truth_exactly_once(data_set: Manifest) -> None:
    with data_set.person_clusters.open(newline="") as stream:
        truth = list(csv.DictReader(stream))
    keys = Counter((row["agency_id"], row["source_record_id"]) for row in truth)
    assert keys and max(keys.values()) == 1
    planted = {(bad["file"], bad["row"]) for bad in bad_rows(data_set)}
    exported: set[tuple[str, str]] = set()
    for file in data_set.files:
        if file.entity != "person":
            continue
        relative = file.path.relative_to(data_set.out_dir).as_posix()
        for number, values in read_rows(file):
            if (relative, number) not in planted:
                exported.add((file.agency, str(values[id_column(file)])))
    assert exported == set(keys)


def test_truth_people_span_several_agencies(data_set: Manifest) -> None:
    with data_set.person_clusters.open(newline="") as stream:
        agencies_per_person = Counter(row["true_person_id"] for row in csv.DictReader(stream))
    sizes = Counter(agencies_per_person.values())
    assert len(agencies_per_person) == PEOPLE
    assert sizes[1] > 0 and sum(sizes[k] for k in (3, 4, 5)) > 0
    assert max(sizes) <= 6  # at most 5 agencies, plus one newcomer record in a change step


def test_every_agency_has_each_kind_of_bad_row_where_it_planted_it(data_set: Manifest) -> None:
    planted = bad_rows(data_set)
    assert {bad["agency"] for bad in planted} == set(AGENCIES)
    for agency in AGENCIES:
        reasons = {bad["reason"] for bad in planted if bad["agency"] == agency}
        expected = set(BAD_ROW_KINDS)
        if agency == "migrant-aid-ngo":  # JSON Lines has no columns to count
            expected = expected - {"wrong_column_count"} | {"malformed_json"}
        assert reasons == expected, agency
    for bad in planted:
        lines = (data_set.out_dir / bad["file"]).read_bytes().splitlines()
        assert bad["row"] <= len(lines)
        if bad["reason"] not in ("missing_source_record_id", "malformed_json"):
            assert bad["source_record_id"].encode() in lines[bad["row"] - 1]


def test_manifest_lists_every_file_with_its_row_count(data_set: Manifest) -> None:
    reloaded = Manifest.load(data_set.out_dir)
    assert reloaded == data_set
    for file in data_set.files:
        lines = file.path.read_bytes().splitlines()
        header = 0 if file.format == "jsonl" else 1
        assert len(lines) - header == file.rows
        assert file.mapping is None or file.mapping.is_file()
    assert {file.step for file in data_set.files} == {0, 1, 2}


def test_mapping_files_parse_and_name_only_columns_their_export_has(
    data_set: Manifest,
) -> None:
    mapped = [file for file in data_set.files if file.mapping]
    assert len({(file.agency, file.entity) for file in mapped}) >= 15
    for file in mapped:
        assert file.mapping is not None
        mapping = yaml.safe_load(file.mapping.read_text())
        assert (mapping["agency"], mapping["entity"]) == (file.agency, file.entity)
        wanted = set(mapping.get("columns", {}).values()) | set(mapping.get("split", {}))
        if file.format == "jsonl":
            header = set(json.loads(file.path.read_text().splitlines()[0]))
        else:
            with file.path.open(encoding=mapping.get("encoding", "utf-8"), newline="") as f:
                header = set(next(csv.reader(f, delimiter=mapping.get("delimiter", ","))))
        assert wanted <= header, (file.path, wanted - header)


def test_change_steps_match_the_changes_truth(data_set: Manifest) -> None:
    assert data_set.changes is not None
    changes = [json.loads(line) for line in data_set.changes.read_text().splitlines()]
    assert {change["change"] for change in changes} == {"create", "update", "delete"}
    for step_file in data_set.exports(1) + data_set.exports(2):
        ids = {str(values[id_column(step_file)]): values for _, values in read_rows(step_file)}
        for change in changes:
            if (change["step"], change["agency"], change["entity"]) != (
                step_file.step, step_file.agency, step_file.entity
            ):
                continue
            if change["change"] == "delete" and step_file.agency != "customs":
                assert change["source_record_id"] not in ids
            elif change["change"] == "delete":  # customs flags its deletions
                assert ids[change["source_record_id"]]["Deleted"] == "Y"
            else:
                assert change["source_record_id"] in ids


def test_person_records_grow_with_the_number_of_people(tmp_path: Path) -> None:
    small = generate(tmp_path / "small", 100, seed=3)
    large = generate(tmp_path / "large", 800, seed=3)
    small_rows = sum(file.rows - file.bad_rows for file in small.exports(0, "person"))
    large_rows = sum(file.rows - file.bad_rows for file in large.exports(0, "person"))
    assert 1.5 * 100 < small_rows < 2.6 * 100
    assert 6 < large_rows / small_rows < 10


def test_a_folder_with_other_files_is_refused_and_an_earlier_run_is_replaced(
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.txt").write_text("not generated")
    with pytest.raises(GenerateError, match="not empty"):
        generate(tmp_path, 10, seed=1)
    target = tmp_path / "data"
    generate(target, 50, seed=1, updates=True)
    rerun = generate(target, 50, seed=1)
    assert not (target / "changes").exists()
    assert rerun.changes is None


def test_the_generate_command_writes_a_data_set_and_reports_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from deploy.cli import main

    code = main(["generate", "--people", "60", "--seed", "4", "--out", str(tmp_path / "d")])
    printed = capsys.readouterr().out
    assert code == 0
    assert (tmp_path / "d" / "manifest.json").is_file()
    assert "person rows/s" in printed and "true people" in printed


def test_the_generate_command_explains_a_refused_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from deploy.cli import main

    (tmp_path / "keep.txt").write_text("mine")
    code = main(["generate", "--people", "10", "--out", str(tmp_path)])
    assert code == 2
    assert "is not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"
