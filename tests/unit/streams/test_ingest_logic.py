"""Ingest's pure decisions: replays, stale versions, deletes, bounded memory, counts."""

from __future__ import annotations

import json
from typing import Any

from streams.ingest_logic import IngestState, Verdict, accept_event, latest_state


def event(event_id: str, version: int, op: str = "UPSERT", record: str = "P-1",
          **payload: Any) -> dict[str, Any]:
    return {
        "agency_id": "police-ctu", "event_id": event_id, "source_record_id": record,
        "source_version": version, "op": op, "payload": payload or None,
    }


def test_a_replayed_event_is_dropped_and_counted():
    state = IngestState()
    assert accept_event(state, event("e1", 1, given_name="Ann"), "person") is Verdict.ACCEPTED
    assert accept_event(state, event("e1", 1, given_name="Ann"), "person") is Verdict.REPLAYED
    assert state.counts == {"person.accepted": 1, "person.replayed": 1}


def test_an_older_version_never_overwrites_a_newer_one():
    state = IngestState()
    accept_event(state, event("e2", 2, given_name="Anne"), "person")
    assert accept_event(state, event("e1", 1, given_name="Ann"), "person") is Verdict.STALE
    assert accept_event(state, event("e3", 2, given_name="Annie"), "person") is Verdict.STALE
    assert latest_state(state, "police-ctu", "P-1")["payload"] == {"given_name": "Anne"}


def test_a_delete_is_a_versioned_tombstone_that_an_older_upsert_cannot_resurrect():
    state = IngestState()
    accept_event(state, event("e1", 1, given_name="Ann"), "person")
    assert accept_event(state, event("e2", 2, op="DELETE"), "person") is Verdict.ACCEPTED
    assert latest_state(state, "police-ctu", "P-1") == {
        "source_version": 2, "deleted": True, "payload": None,
    }
    assert accept_event(state, event("e0", 1, given_name="Ann"), "person") is Verdict.STALE
    assert accept_event(state, event("e3", 3, given_name="Ann"), "person") is Verdict.ACCEPTED


def test_replay_memory_is_bounded_and_old_replays_are_still_caught_as_stale():
    state = IngestState(capacity=3)
    for version in range(1, 11):
        accept_event(state, event(f"e{version}", version, given_name="Ann"), "person")
    assert len(state.recent_events) == 3
    # e1 left the window long ago, but its version is old: dropped all the same.
    assert accept_event(state, event("e1", 1, given_name="Ann"), "person") is Verdict.STALE


def test_state_round_trips_through_json():
    state = IngestState(capacity=5)
    accept_event(state, event("e1", 1, given_name="Ann"), "person")
    restored = IngestState.from_state(json.loads(json.dumps(state.to_state())))
    assert accept_event(restored, event("e1", 1, given_name="Ann"), "person") is Verdict.REPLAYED
    assert restored.latest == state.latest
