"""produce_file's row bookkeeping (ids, duplicates, what a full export keeps), without Kafka."""

from __future__ import annotations

import json
from pathlib import Path

from producers.canonical import Entity
from producers.file_source import FileOptions, produce_file
from producers.records import NormalisedRecord
from producers.rejects import RejectsFile


class RecordingTracker:
    """Stands in for ChangeTracker: keeps what would be published and deleted."""

    def __init__(self) -> None:
        self.offered: list[NormalisedRecord] = []
        self.kept: set[str] | None = None

    def offer(self, record: NormalisedRecord) -> None:
        self.offered.append(record)

    def pump(self) -> None:
        pass

    def delete_missing(self, seen: set[str], entity: Entity) -> int:
        self.kept = seen
        return 0


def produce(tmp_path: Path, name: str, text: str) -> tuple[RecordingTracker, list[dict]]:
    export = tmp_path / name
    export.write_text(text, encoding="utf-8")
    tracker = RecordingTracker()
    rejects = RejectsFile(tmp_path, name)
    options = FileOptions(export, Entity.PERSON, None, full_export=True, progress=False)
    produce_file(options, tracker, rejects)  # type: ignore[arg-type]
    rejects.close()
    lines = rejects.path.read_text().splitlines() if rejects.count else []
    return tracker, [json.loads(line) for line in lines]


def test_a_full_export_keeps_the_cleaned_id_it_publishes(tmp_path: Path) -> None:
    tracker, rejects = produce(
        tmp_path, "people.csv", "source_record_id,given_name\nA  2,Ann\n B-1 ,Bo\n"
    )
    assert rejects == []
    assert [record.source_record_id for record in tracker.offered] == ["A 2", "B-1"]
    assert tracker.kept == {"A 2", "B-1"}


def test_raw_ids_that_clean_to_one_id_are_duplicates_named_by_their_rows(tmp_path: Path) -> None:
    tracker, rejects = produce(
        tmp_path, "people.csv",
        "source_record_id,given_name\nA 2,Ann\nA  2,Bo\nA\u00a02,Cy\nB-1,Di\n",
    )
    assert [record.source_record_id for record in tracker.offered] == ["A 2", "B-1"]
    assert [reject["row"] for reject in rejects] == [3, 4]
    for reject, row in zip(rejects, (3, 4), strict=True):
        reason = reject["reason"]
        assert "appears again" in reason and "row 2" in reason and f"row {row}" in reason
        assert "A 2" not in reason and "A  2" not in reason  # no field values


def test_jsonl_ids_one_as_integer_and_string_are_one_id(tmp_path: Path) -> None:
    tracker, rejects = produce(
        tmp_path, "people.jsonl",
        '{"source_record_id": 1, "given_name": "Ann"}\n'
        '{"source_record_id": "1", "given_name": "Bo"}\n'
        '{"source_record_id": 1.0, "given_name": "Cy"}\n'
        '{"source_record_id": true, "given_name": "Di"}\n',
    )
    assert [record.source_record_id for record in tracker.offered] == ["1"]
    reasons = {reject["row"]: reject["reason"] for reject in rejects}
    assert "appears again (first at row 1" in reasons[2]
    assert "string or a whole number" in reasons[3] and "string or a whole number" in reasons[4]


def test_a_row_refused_for_a_control_character_in_its_id_is_not_deleted(tmp_path: Path) -> None:
    # An earlier version published this row as "A 2" (control characters became spaces);
    # while it is refused, a full export must not DELETE what it published.
    tracker, rejects = produce(
        tmp_path, "people.csv", "source_record_id,given_name\nA\x002,Ann\nB-1,Bo\n"
    )
    assert [record.source_record_id for record in tracker.offered] == ["B-1"]
    (reject,) = rejects
    assert reject["row"] == 2 and "holds a control" in reject["reason"]
    assert tracker.kept == {"A 2", "B-1"}
