"""A worker killed with SIGKILL mid-run and started again gives the reconciled output of a run
that never died: the clusters and golden records an in-process resolver computes from the
same events, and golden versions that never go backwards."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from schemas.agencies import load_agencies
from schemas.config import Settings
from streams.bench_stream import person_event
from streams.harness import StreamHarness
from streams.ingest import check_event
from streams.resolve import Resolver
from streams.resolve_stage import ResolveStage, trust_ranks

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
        for event in events[:third]:
            harness.publish("person", event)
        harness.flush()
        worker = harness.start_worker(store="rocksdb")
        # Killed once some resolve work is committed and more is under way (commits come
        # every 2.8 s), so the restart both rebuilds from the resolve topic and processes
        # uncommitted messages again.
        harness.wait_for(lambda: harness.committed("internal.resolve") > 0, timeout=90,
                         what="the first committed resolve offset")
        for event in events[third:2 * third]:
            harness.publish("person", event)
        harness.flush()
        time.sleep(0.5)
        harness.stop_worker(worker, kill=True)
        for event in events[2 * third:]:
            harness.publish("person", event)
        harness.flush()
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
        for key, value in harness.latest("internal.person-mapping").items() if value
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
    published = harness.latest("reconciled.person")
    live = {key: value for key, value in published.items() if value and not value["merged_into"]}
    assert set(live) == set(stage.resolver.clusters())
    for person_id, value in live.items():
        expected = stage.resolver.golden(person_id)
        assert expected is not None
        assert {**value, "golden_version": 0} == {**expected, "golden_version": 0}


def test_golden_versions_never_go_backwards(
    killed_and_restarted: tuple[StreamHarness, list[dict[str, Any]]],
) -> None:
    """Messages processed again after the kill are re-sent with the versions they had, so the
    topic may repeat an older version; but a repeat is identical, and each golden record's
    last message carries its highest version, the one the sink keeps."""
    harness, _ = killed_and_restarted
    sent: dict[bytes, list[tuple[int, Any]]] = {}
    for message in sorted(harness.read("reconciled.person"), key=lambda m: m.offset):
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
