from __future__ import annotations

import os
import stat
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from producers.canonical import Entity
from producers.checkpoint import CheckpointStore, PublishedState, source_folder
from producers.records import NormalisedRecord
from producers.versions import Change, decide, epoch_millis

NOW = 1_800_000_000_000
UPDATED = datetime(2024, 5, 1, tzinfo=UTC)


def record(**changes: object) -> NormalisedRecord:
    base = NormalisedRecord(
        entity=Entity.CASE, source_record_id="C-1", deleted=False, updated_at=UPDATED,
        explicit_version=None, payload={"title": "A"},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_new_record_is_published_with_its_updated_at_as_version() -> None:
    decision = decide(record(), None, NOW)
    assert (decision.change, decision.source_version) == (Change.PUBLISH, epoch_millis(UPDATED))


def test_an_unchanged_record_is_not_published_again() -> None:
    first = decide(record(), None, NOW)
    previous = PublishedState(first.content_hash, first.source_version, False)
    assert decide(record(), previous, NOW).change is Change.UNCHANGED


def test_a_change_without_a_new_updated_at_still_gets_a_higher_version() -> None:
    first = decide(record(), None, NOW)
    previous = PublishedState(first.content_hash, first.source_version, False)
    second = decide(record(payload={"title": "B"}), previous, NOW)
    assert second.change is Change.PUBLISH and second.source_version == first.source_version + 1


def test_an_older_export_is_stale() -> None:
    previous = PublishedState("other", epoch_millis(UPDATED) + 5, False)
    assert decide(record(), previous, NOW).change is Change.STALE


def test_without_version_or_updated_at_the_producer_counts() -> None:
    previous = PublishedState("other", NOW + 10, False)
    assert decide(record(updated_at=None), previous, NOW).source_version == NOW + 11
    assert decide(record(updated_at=None, explicit_version=7), None, NOW).source_version == 7


def test_the_checkpoint_survives_reopening(tmp_path: Path) -> None:
    folder = source_folder(tmp_path, "police-ctu", "case", "/exports/cases.csv")
    store = CheckpointStore(folder, "/exports/cases.csv")
    store.save([("C-1", PublishedState("h", 5, False, ("C-1#x",)))], {"watermark": ["a", "1"]})
    store.close()
    reopened = CheckpointStore(folder, "/exports/cases.csv")
    assert reopened.load() == {"C-1": PublishedState("h", 5, False, ("C-1#x",))}
    assert reopened.state("watermark") == ["a", "1"]
    assert folder.parent == tmp_path / "producers" / "police-ctu" / "case"


def test_content_hashes_stay_those_of_the_standard_library_json_text() -> None:
    """Hashes are stored in checkpoints: the faster writer must not change a single one."""
    import hashlib
    import json
    from datetime import date

    from producers.versions import content_hash

    def reference(item: NormalisedRecord) -> str:
        document = {
            "deleted": item.deleted,
            "payload": None if item.deleted else item.payload,
            "derived": [[d.source_record_id, d.deleted, d.payload] for d in item.derived],
        }
        text = json.dumps(
            document, sort_keys=True, separators=(",", ":"),
            default=lambda value: value.isoformat(),
        )
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    samples = [
        record(),
        record(payload={"title": "Jos\u00e9", "opened_on": date(2024, 1, 2), "b": [1, None]}),
        record(payload={"received_at": UPDATED, "z": {"b": True, "a": "x"}}),
        record(deleted=True),
        record(entity=Entity.LOCATION, payload={"latitude": 0.00001, "longitude": 1e16}),
        record(derived=(record(source_record_id="C-1#case-link"),)),
    ]
    for sample in samples:
        assert content_hash(sample) == reference(sample), sample


def test_the_checkpoint_is_private_whatever_the_umask(tmp_path: Path) -> None:
    folder = source_folder(tmp_path, "police-ctu", "case", "/exports/cases.csv")
    previous = os.umask(0o022)  # a library caller that never set tipsync's umask
    try:
        store = CheckpointStore(folder, "/exports/cases.csv")
        store.save([("C-1", PublishedState("h1", 1, False))])
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()}
        store.close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert modes["source.txt"] == modes["checkpoint.sqlite3"] == 0o600
    assert modes.get("checkpoint.sqlite3-wal", 0o600) == 0o600
