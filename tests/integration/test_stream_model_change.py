"""Rolling out another scoring model re-resolves what the stream app holds and leaves the
reconciled view as if every record had been resolved under the new model from the start: no
stale golden person, retired ids merged into their survivor, versions that only grow.

Real worker processes on the real stack: resolve with the default weights, restart with a
model under which no pair matches (every cluster splits), restart with the default again
(the splits merge back)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.bench.stream import person_event
from deploy.bench.stream_harness import StreamHarness
from schemas.agencies import load_agencies
from schemas.config import Settings
from streams.ingest import check_event
from streams.resolve import Resolver
from streams.resolve.model_file import DEFAULT_MODEL_FILE, ModelFile, write_model_file
from streams.resolve.scoring import ScoringModel
from streams.resolve_stage import ResolveStage, trust_ranks

PEOPLE = 40
# No pair reaches these thresholds: every record is a golden person of its own.
STRICT = ModelFile(ScoringModel(match_threshold=1000.0, review_threshold=990.0))


def _events() -> list[dict[str, Any]]:
    """Every person at police-ctu and, the same facts, at immigration: one cluster each under
    the default weights, two under STRICT."""
    rng = random.Random(11)
    return [person_event(index, agency, rng)
            for index in range(PEOPLE) for agency in ("police-ctu", "immigration")]


def _expected(harness: StreamHarness, events: list[dict[str, Any]],
              model: ModelFile) -> dict[str, set[str]]:
    """person id -> source keys, from an in-process resolver under ``model``."""
    stage = ResolveStage(lambda: Resolver(trust_ranks(load_agencies()), model.model))
    for event in events:
        record = harness.deserializer(harness.encode("person", event)).record
        key = f"{event['agency_id']}:{event['source_record_id']}".encode()
        stage.load(check_event(event["agency_id"], "person", key, record))
    return {person: set(members) for person, members in stage.resolver.clusters().items()}


def _view(harness: StreamHarness) -> dict[str, dict[str, Any] | None]:
    return harness.latest(harness.topics.reconciled("person"))


def _live(view: dict[str, dict[str, Any] | None]) -> dict[str, set[str]]:
    return {
        person: {f"{s['agency_id']}:{s['source_record_id']}" for s in value["sources"]}
        for person, value in view.items() if value is not None and not value.get("merged_into")
    }


def _versions(harness: StreamHarness) -> dict[str, list[int]]:
    versions: dict[str, list[int]] = {}
    for message in harness.read(harness.topics.reconciled("person")):
        if message.value is not None:
            value = harness.decode(message.value)
            versions.setdefault(value["person_id"], []).append(value["golden_version"])
    return versions


def _run_until_model_recorded(harness: StreamHarness, model_path: Path | None,
                              recorded: int) -> Any:
    extra = ("--model", str(model_path)) if model_path is not None else ()
    worker = harness.start_worker(extra=extra)
    harness.wait_for(lambda: harness.count(harness.topics.resolve_model) >= recorded, timeout=120,
                     what=f"model record number {recorded}")
    harness.wait_for(harness.caught_up, timeout=120, what="the re-resolved view")
    return worker


@pytest.fixture(scope="module")
def phases(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    tuple[StreamHarness, list[dict[str, Any]], list[dict[str, Any]]]
]:
    harness = StreamHarness(stack, entities=("person",)).setup()
    strict_path = tmp_path_factory.mktemp("models") / "strict.json"
    write_model_file(strict_path, STRICT)
    events = _events()
    snapshots: list[dict[str, Any]] = []
    try:
        for event in events:
            harness.publish("person", event)
        harness.flush()
        worker = harness.start_worker()
        harness.wait_for(harness.caught_up, timeout=120, what="the default-weights view")
        snapshots.append({"view": _view(harness), "versions": _versions(harness)})
        harness.stop_worker(worker)

        worker = _run_until_model_recorded(harness, strict_path, recorded=1)
        snapshots.append({"view": _view(harness), "versions": _versions(harness),
                          "log": harness.worker_log()})
        # an input after the change is published above the change's version
        late = person_event(PEOPLE + 1, "police-ctu", random.Random(1))
        harness.publish("person", late)
        harness.flush()
        events.append(late)
        harness.wait_for(harness.caught_up, timeout=60, what="the late record")
        snapshots.append({"view": _view(harness), "versions": _versions(harness)})
        harness.stop_worker(worker)

        worker = _run_until_model_recorded(harness, None, recorded=2)
        snapshots.append({"view": _view(harness), "versions": _versions(harness)})
        harness.stop_worker(worker)
        yield harness, events, snapshots
    finally:
        harness.teardown()


def test_the_default_weights_merge_each_person_across_agencies(phases: Any) -> None:
    harness, events, snapshots = phases
    live = _live(snapshots[0]["view"])
    assert live == _expected(harness, events[:2 * PEOPLE], DEFAULT_MODEL_FILE)
    assert all(len(members) >= 2 for members in live.values())


def test_a_stricter_model_splits_every_cluster_and_leaves_no_stale_golden_person(
    phases: Any,
) -> None:
    harness, events, snapshots = phases
    after = snapshots[1]
    assert _live(after["view"]) == _expected(harness, events[:2 * PEOPLE], STRICT)
    assert len(_live(after["view"])) == 2 * PEOPLE
    assert STRICT.fingerprint in after["log"]
    # every golden id that was published before got a newer version, never an older one
    before = snapshots[0]["versions"]
    for person, versions in after["versions"].items():
        assert versions == sorted(versions) and len(set(versions)) == len(versions), person
        if person in before:
            assert max(versions) > max(before[person])


def test_inputs_after_a_model_change_resolve_under_the_new_model_with_higher_versions(
    phases: Any,
) -> None:
    harness, events, snapshots = phases
    assert _live(snapshots[2]["view"]) == _expected(harness, events, STRICT)
    change_version = max(max(v) for v in snapshots[1]["versions"].values())
    new_ids = snapshots[2]["versions"].keys() - snapshots[1]["versions"].keys()
    assert new_ids and all(min(snapshots[2]["versions"][p]) > change_version for p in new_ids)


def test_back_to_the_default_weights_merges_the_split_ids_into_their_survivors(
    phases: Any,
) -> None:
    harness, events, snapshots = phases
    view = snapshots[3]["view"]
    expected = _expected(harness, events, DEFAULT_MODEL_FILE)
    assert _live(view) == expected
    retired = {person: value["merged_into"] for person, value in view.items()
               if value is not None and value.get("merged_into")}
    # each record was a golden person of its own; all but each cluster's anchor retire
    assert len(retired) == len(events) - len(expected)
    assert all(survivor in expected for survivor in retired.values())
