"""A worker killed with SIGKILL mid-run and started again gives the reconciled output of a run
that never died: the clusters and golden records an in-process resolver computes from the
same events, and golden versions that never go backwards."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploy.bench.stream import person_event
from deploy.bench.stream_harness import StreamHarness
from schemas.agencies import load_agencies
from schemas.config import Settings
from streams.ingest import check_event
from streams.resolve import Resolver
from streams.resolve_stage import ResolveStage, trust_ranks
from streams.snapshot import snapshot_files

PEOPLE = 600


def _events(seed: int) -> list[dict[str, Any]]:
    """People at police-ctu, a fifth of them at immigration too, and some later changes."""
    rng = random.Random(seed)
    events = []
    for index in range(PEOPLE):
        events.append(person_event(index, "police-ctu", rng))
        if index % 5 == 0:
            events.append(person_event(index, "immigration", rng))
    for index in range(0, PEOPLE, 12):
        changed = person_event(index, "police-ctu", rng)
        changed["source_version"] = 2
        changed["payload"]["phones"] = [f"+1876555{index % 10_000:04d}"]
        events.append(changed)
    return events


def _publish(harness: StreamHarness, events: list[dict[str, Any]]) -> None:
    for event in events:
        harness.publish("person", event)
    harness.flush()


def expected_stage(harness: StreamHarness, events: list[dict[str, Any]]) -> ResolveStage:
    stage = ResolveStage(lambda: Resolver(trust_ranks(load_agencies())))
    for event in events:
        record = harness.deserializer(harness.encode("person", event)).record
        key = f"{event['agency_id']}:{event['source_record_id']}".encode()
        stage.load(check_event(event["agency_id"], "person", key, record))
    return stage


@pytest.fixture(scope="module")
def killed_and_restarted(stack: Settings) -> Iterator[tuple[StreamHarness, list[dict[str, Any]]]]:
    harness = StreamHarness(stack, entities=("person",)).setup()
    events = _events(seed=5)
    third = len(events) // 3
    try:
        _publish(harness, events[:third])
        worker = harness.start_worker(store="rocksdb")
        # Killed once some resolve work is committed and more is under way (commits come
        # every 2.8 s), so the restart both rebuilds from the resolve topic and processes
        # uncommitted messages again.
        harness.wait_for(lambda: harness.committed(harness.topics.resolve) > 0, timeout=90,
                         what="the first committed resolve offset")
        _publish(harness, events[third:2 * third])
        time.sleep(0.5)
        harness.stop_worker(worker, kill=True)
        _publish(harness, events[2 * third:])
        harness.start_worker(store="rocksdb")
        harness.wait_for(harness.caught_up, timeout=240, what="the restarted worker")
        yield harness, events
    finally:
        harness.teardown()


def test_restarted_worker_gives_the_clusters_of_a_run_that_never_died(
    killed_and_restarted: tuple[StreamHarness, list[dict[str, Any]]],
) -> None:
    harness, events = killed_and_restarted
    assert "resolve: rebuilt from" in harness.worker_log()
    stage = expected_stage(harness, events)
    mapping = {
        key: value["person_id"]
        for key, value in harness.latest(harness.topics.person_mapping).items() if value
    }
    expected = {
        key: person for person, keys in stage.resolver.clusters().items() for key in keys
    }
    assert mapping == expected


def test_restarted_worker_publishes_the_same_golden_records(
    killed_and_restarted: tuple[StreamHarness, list[dict[str, Any]]],
) -> None:
    harness, events = killed_and_restarted
    stage = expected_stage(harness, events)
    published = harness.latest(harness.topics.reconciled("person"))
    live = {key: value for key, value in published.items() if value and not value["merged_into"]}
    assert set(live) == set(stage.resolver.clusters())
    for person_id, value in live.items():
        expected = stage.resolver.golden(person_id)
        assert expected is not None
        assert {**value, "golden_version": 0} == as_published(harness, expected)


def test_golden_versions_never_go_backwards(
    killed_and_restarted: tuple[StreamHarness, list[dict[str, Any]]],
) -> None:
    """Messages processed again after the kill are re-sent with the versions they had, so the
    topic may repeat an older version; but a repeat is identical, and each golden record's
    last message carries its highest version, the one the sink keeps."""
    harness, _ = killed_and_restarted
    sent: dict[bytes, list[tuple[int, Any]]] = {}
    people = harness.read(harness.topics.reconciled("person"))
    for message in sorted(people, key=lambda m: m.offset):
        if message.value is not None and message.key is not None:
            value = harness.decode(message.value)
            assert value is not None
            sent.setdefault(message.key, []).append((value["golden_version"], value))
    assert sent
    for sequence in sent.values():
        assert sequence[-1][0] == max(version for version, _ in sequence)
        by_version: dict[int, Any] = {}
        for version, value in sequence:
            assert by_version.setdefault(version, value) == value


# ---------------------------------------------------------------------- snapshots
#
# The same kind of run with resolve snapshots every 200 messages: a worker killed mid-run is
# restarted from its snapshot (and the topic after it) and must publish what a run that never
# died publishes; then it is killed again, its snapshots damaged, and the next worker must
# pass over them, replay the whole topic and still publish the same.

SNAPSHOT_EVERY = {"TIPSYNC_RESOLVE_SNAPSHOT_RECORDS": "200"}


def _latest_view(harness: StreamHarness) -> tuple[dict[str, str], dict[str, Any]]:
    mapping = {
        key: value["person_id"]
        for key, value in harness.latest(harness.topics.person_mapping).items() if value
    }
    live = {key: value for key, value in harness.latest(harness.topics.reconciled("person")).items()
            if value and not value["merged_into"]}
    return mapping, live


def as_published(harness: StreamHarness, golden: dict[str, Any]) -> Any:
    """The in-process golden record as the topic carries it: through the contract's Avro
    serializer and back, so fields at their defaults read back as the worker's do."""
    encoded = harness.serializer("reconciled.person")({**golden, "golden_version": 0})
    return harness.decode(encoded)


def _assert_view_is(
    harness: StreamHarness, view: tuple[dict[str, str], dict[str, Any]], stage: ResolveStage
) -> None:
    mapping, live = view
    clusters = stage.resolver.clusters()
    assert mapping == {key: person for person, keys in clusters.items() for key in keys}
    assert set(live) == set(clusters)
    for person_id, value in live.items():
        expected = stage.resolver.golden(person_id)
        assert expected is not None
        assert {**value, "golden_version": 0} == as_published(harness, expected)


def _snapshot_folder(harness: StreamHarness) -> Path:
    return (Path(harness.settings.home) / "streams" / harness.topics.stream_group
            / "worker-0" / "resolve-snapshots")


def _damage(path: Path) -> None:
    """Change one letter of a name: the file stays valid JSON, only its checksum tells."""
    data = bytearray(path.read_bytes())
    index = data.index(b'"family_name":"') + len(b'"family_name":"')
    data[index] = ord("Q") if data[index] != ord("Q") else ord("Z")
    path.write_bytes(bytes(data))


@dataclass
class SnapshotRun:
    harness: StreamHarness
    events: list[dict[str, Any]]
    restarted_at: int  # events published when the view below was read
    view_after_snapshot_restart: tuple[dict[str, str], dict[str, Any]]
    log_after_snapshot_restart: str


@pytest.fixture(scope="module")
def restarted_from_snapshot(stack: Settings) -> Iterator[SnapshotRun]:
    harness = StreamHarness(stack, entities=("person",)).setup()
    events = _events(seed=9)
    third = len(events) // 3
    try:
        _publish(harness, events[:third])
        worker = harness.start_worker(store="rocksdb", environment=SNAPSHOT_EVERY)
        harness.wait_for(harness.caught_up, timeout=120, what="the first third resolved")
        assert snapshot_files(_snapshot_folder(harness)), "no snapshot after 200 messages"
        _publish(harness, events[third:2 * third])
        time.sleep(0.5)
        harness.stop_worker(worker, kill=True)
        _publish(harness, events[2 * third:])
        worker = harness.start_worker(store="rocksdb", environment=SNAPSHOT_EVERY)
        harness.wait_for(harness.caught_up, timeout=240, what="the worker restarted from "
                         "its snapshot")
        run = SnapshotRun(harness, events, len(events), _latest_view(harness),
                          harness.worker_log())
        harness.stop_worker(worker, kill=True)
        for snapshot in snapshot_files(_snapshot_folder(harness)):
            _damage(snapshot.path)
        changed = person_event(3, "immigration", random.Random(1))  # one more record
        events.append(changed)
        harness.publish("person", changed)
        harness.flush()
        harness.start_worker(store="rocksdb", environment=SNAPSHOT_EVERY)
        harness.wait_for(harness.caught_up, timeout=240, what="the worker restarted past its "
                         "damaged snapshots")
        yield run
    finally:
        harness.teardown()


def test_worker_restarted_from_its_snapshot_publishes_what_a_run_that_never_died_does(
    restarted_from_snapshot: SnapshotRun,
) -> None:
    run = restarted_from_snapshot
    rebuilds = [line for line in run.log_after_snapshot_restart.splitlines()
                if "resolve: rebuilt from" in line]
    assert "(snapshot at offset" in rebuilds[-1]
    expected = expected_stage(run.harness, run.events[:run.restarted_at])
    _assert_view_is(run.harness, run.view_after_snapshot_restart, expected)


def test_damaged_snapshots_are_passed_over_and_the_whole_topic_replayed(
    restarted_from_snapshot: SnapshotRun,
) -> None:
    run = restarted_from_snapshot
    log = run.harness.worker_log()[len(run.log_after_snapshot_restart):]
    assert "does not match its trailer" in log
    rebuilds = [line for line in log.splitlines() if "resolve: rebuilt from" in line]
    assert "(the whole topic" in rebuilds[-1]
    _assert_view_is(run.harness, _latest_view(run.harness), expected_stage(run.harness, run.events))
