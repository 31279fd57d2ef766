"""Resolve snapshots: a stage written and read back is the same stage; a damaged, foreign or
too new snapshot is refused with its reason; files are private and few. Nothing running."""

from __future__ import annotations

import hashlib
import random
import stat
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from deploy.bench.resolve import checked_people
from schemas.agencies import load_agencies
from schemas.examples import example_event
from streams.ingest import AgencyEvent, check_event
from streams.options import StreamOptions
from streams.resolve import Resolver
from streams.resolve_stage import Output, ResolveStage, trust_ranks
from streams.snapshot import (
    KEEP_SNAPSHOTS,
    REBUILT_LINE,
    SnapshotError,
    SnapshotPolicy,
    read_header,
    read_snapshot,
    snapshot_doubt,
    snapshot_files,
    write_snapshot,
)

TRUST = trust_ranks(load_agencies())
TOPIC_ID = "HiHDLZtmRFuQJzKzSGnCrg"


def _link(record: str, person_record: str) -> AgencyEvent:
    payload = {**example_event("link")["payload"], "from_record_id": person_record,
               "valid_from": date(2024, 3, 1)}
    event = example_event("link", "police-ctu", record, payload=payload)
    return check_event("police-ctu", "link", f"police-ctu:{record}".encode(), event)


def _stage(people: int = 300) -> ResolveStage:
    stage = ResolveStage(lambda: Resolver(TRUST))
    for offset, event in enumerate(checked_people(range(people), random.Random(3), 0.3)):
        stage.apply(event, golden_version=offset)
    stage.apply(_link("L-1", "POL-00000001"), golden_version=people * 2)
    stage.finish_loading()
    return stage


def _read(path: Path) -> tuple[Any, ResolveStage]:
    return read_snapshot(path, lambda state: Resolver.from_state(state, trust=TRUST))


def test_a_stage_read_back_from_its_snapshot_holds_the_same_people_links_and_versions(
    tmp_path: Path,
) -> None:
    stage = _stage()
    written = write_snapshot(tmp_path, stage, offset=777, topic_id=TOPIC_ID)
    header, loaded = _read(written.path)
    assert (header.offset, header.topic_id, header.records) == (
        777, TOPIC_ID, len(stage.resolver.records))
    assert loaded.resolver.clusters() == stage.resolver.clusters()
    assert loaded.resolver.published == stage.resolver.published
    for person_id in stage.resolver.clusters():
        assert loaded.resolver.golden(person_id) == stage.resolver.golden(person_id)
    assert loaded.resolver.pairs_scored == 0  # the saved edges were taken, nothing scored
    assert list(loaded.link_states()) == list(stage.link_states())
    assert loaded.links["police-ctu:L-1"].event == stage.links["police-ctu:L-1"].event
    # the next change resolves the same way in both (but for the time of each decision)
    change = next(checked_people(range(5, 6), random.Random(9), 1.0))
    assert _timeless(loaded.apply(change, 900)) == _timeless(stage.apply(change, 900))


def _timeless(outputs: list[Output]) -> list[Output]:
    return [Output(o.kind, o.key, {k: v for k, v in (o.value or {}).items() if k != "decided_at"})
            for o in outputs]


def test_snapshot_files_are_private_and_only_the_newest_are_kept(tmp_path: Path) -> None:
    stage = _stage(20)
    folder = tmp_path / "snapshots"
    for offset in (10, 30, 20, 40):
        write_snapshot(folder, stage, offset=offset, topic_id=TOPIC_ID)
    files = snapshot_files(folder)
    assert [snapshot.offset for snapshot in files] == [40, 30][:KEEP_SNAPSHOTS]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(f.path.stat().st_mode) == 0o600 for f in files)
    assert not list(folder.glob(".writing-*"))


def _rewrite(path: Path, header_changes: dict[str, Any], keep: Any) -> None:
    """Rewrite a snapshot with its header changed and only the lines ``keep`` accepts, with a
    trailer that matches (as another version of the code would have written it)."""
    lines = path.read_bytes().split(b"\n")[:-2]  # without the trailer and the last newline
    header = {**orjson.loads(lines[0]), **header_changes}
    header = {key: value for key, value in header.items() if value is not None}
    kept = [orjson.dumps(header)] + [line for line in lines[1:] if keep(orjson.loads(line))]
    trailer = {"lines": len(kept), "sha256": hashlib.sha256(b"".join(kept)).hexdigest()}
    path.write_bytes(b"\n".join(kept + [orjson.dumps(trailer)]) + b"\n")


def test_a_snapshot_of_state_format_1_without_edges_loads_by_scoring_again(
    tmp_path: Path,
) -> None:
    stage = _stage(200)
    written = write_snapshot(tmp_path, stage, offset=400, topic_id=TOPIC_ID)
    _rewrite(written.path, {"state_format": 1, "derived": None},
             lambda entry: entry[0] not in ("edges", "cluster"))
    _, loaded = _read(written.path)
    assert loaded.resolver.pairs_scored > 0
    assert loaded.resolver.clusters() == stage.resolver.clusters()
    assert loaded.resolver.published == stage.resolver.published


def test_a_snapshot_of_an_unknown_state_format_is_refused_so_the_topic_is_replayed(
    tmp_path: Path,
) -> None:
    written = write_snapshot(tmp_path, _stage(20), offset=40, topic_id=TOPIC_ID)
    _rewrite(written.path, {"state_format": 99}, lambda entry: True)
    with pytest.raises(SnapshotError, match="format 1/99.*the topic is replayed"):
        read_header(written.path)


def test_a_snapshot_with_edges_but_a_record_missing_is_refused(tmp_path: Path) -> None:
    stage = _stage(60)
    written = write_snapshot(tmp_path, stage, offset=70, topic_id=TOPIC_ID)
    dropped = next(iter(stage.resolver.records))
    _rewrite(written.path, {"records": len(stage.resolver.records) - 1},
             lambda entry: entry[:2] != ["record", dropped])
    with pytest.raises(SnapshotError, match="inconsistent"):
        _read(written.path)


@pytest.mark.parametrize("damage", ["flip", "cut", "empty", "drop_line"])
def test_a_damaged_snapshot_is_refused_with_its_path(tmp_path: Path, damage: str) -> None:
    written = write_snapshot(tmp_path, _stage(40), offset=5, topic_id=TOPIC_ID)
    data = bytearray(written.path.read_bytes())
    if damage == "flip":  # a changed letter inside a record: still valid JSON
        index = data.index(b'"family_name":"') + len(b'"family_name":"')
        data[index] = ord("Q") if data[index] != ord("Q") else ord("Z")
    elif damage == "cut":
        data = data[: len(data) // 2]
    elif damage == "empty":
        data = bytearray()
    else:
        lines = bytes(data).split(b"\n")
        data = bytearray(b"\n".join(lines[:3] + lines[4:]))
    written.path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match=str(written.path)):
        _read(written.path)


def test_a_snapshot_is_doubted_for_a_newer_offset_another_model_or_another_topic(
    tmp_path: Path,
) -> None:
    stage = _stage(10)
    header = read_header(write_snapshot(tmp_path, stage, 50, TOPIC_ID).path)
    model = stage.model_fingerprint
    assert snapshot_doubt(header, 50, model, TOPIC_ID, 0) is None
    assert "beyond 49" in (snapshot_doubt(header, 49, model, TOPIC_ID, 0) or "")
    assert "scoring model" in (snapshot_doubt(header, 60, "0123456789abcdef", TOPIC_ID, 0) or "")
    assert "recreated" in (snapshot_doubt(header, 60, model, "another", 0) or "")
    assert "recreated" in (snapshot_doubt(header, 60, model, None, 0) or "")
    assert "starts at offset 51" in (snapshot_doubt(header, 60, model, TOPIC_ID, 51) or "")


def test_snapshots_are_due_by_records_or_time_but_never_take_over_a_tenth_of_the_time() -> None:
    policy = SnapshotPolicy(every_records=1000, every_seconds=600)
    assert not policy.due(0, 10_000, 0.0)  # nothing new
    assert not policy.due(999, 599, 0.0)
    assert policy.due(1000, 1, 0.0)
    assert policy.due(1, 600, 0.0)
    assert not policy.due(5000, 50, 6.0)  # writing took 6 s: wait 60 s
    assert policy.due(5000, 61, 6.0)
    assert not SnapshotPolicy(every_records=0).due(10**6, 10**6, 0.0)


def test_a_write_under_a_second_never_holds_the_next_snapshot_back() -> None:
    # The erasure test's worker (every_records 1): a snapshot of two people took 0.09 s
    # (most of it a broker round trip), the next message came 0.8 s later; held back, the
    # last message stayed uncovered until another came, which none did.
    every_message = SnapshotPolicy(every_records=1, every_seconds=600)
    assert every_message.due(1, 0.8, 0.09)
    assert every_message.due(1, 0.0, 0.99)
    assert not every_message.due(1, 9.9, 1.0)  # from a second on, a tenth of the time
    assert every_message.due(1, 10.0, 1.0)


def test_snapshot_options_come_from_the_environment_and_refuse_words() -> None:
    options = StreamOptions.from_environment({"TIPSYNC_RESOLVE_SNAPSHOT_RECORDS": "0",
                                              "TIPSYNC_RESOLVE_SNAPSHOT_SECONDS": "60"})
    assert (options.snapshot_every_records, options.snapshot_every_seconds) == (0, 60)
    with pytest.raises(ValueError, match="TIPSYNC_RESOLVE_SNAPSHOT_RECORDS='many'"):
        StreamOptions.from_environment({"TIPSYNC_RESOLVE_SNAPSHOT_RECORDS": "many"})


def test_the_rebuild_log_line_is_what_the_benchmark_reads() -> None:
    line = ("[2026-11-30 04:49:16,609] [11213] [WARNING] resolve: rebuilt from 120006 records "
            "in 31.5 s (snapshot at offset 120005 plus the topic after it: 1 messages read), "
            "scoring model 96fa710933c3f0b2")
    match = REBUILT_LINE.search(line)
    assert match is not None
    assert match.group("records", "seconds", "source", "read") == (
        "120006", "31.5", "snapshot at offset 120005 plus the topic after it", "1")
