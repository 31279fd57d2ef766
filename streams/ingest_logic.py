"""Ingest's decisions, as pure functions over plain state: replay, staleness, latest state.

- A *replayed* event (same agency and event_id, e.g. a producer retry or a re-published
  file) is dropped. Memory is bounded: only the most recent ``capacity`` event ids are
  remembered. That suffices because an old replay also carries an old source_version, which
  the version check drops; the window only has to catch replays of the newest version.
- A *stale* event (source_version not newer than the one held for that source record) is
  dropped: an older version never overwrites a newer one, whatever the arrival order.
- A DELETE is kept as a versioned tombstone, so that an older UPSERT arriving after it is
  still recognised as stale instead of resurrecting the record.

The stream app keeps ``IngestState`` in a changelogged table (one per partition: source
records never move between partitions, their key fixes the partition).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

DEFAULT_REPLAY_WINDOW = 100_000


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    REPLAYED = "replayed"  # same agency + event_id seen recently
    STALE = "stale"        # source_version not newer than the one held


@dataclass
class IngestState:
    """Replay window, latest version per source record, and counts of everything decided."""

    capacity: int = DEFAULT_REPLAY_WINDOW
    recent_events: OrderedDict[str, None] = field(default_factory=OrderedDict)
    # "<agency_id>:<source_record_id>" -> {"source_version", "deleted", "payload"}
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity, "recent_events": list(self.recent_events),
            "latest": self.latest, "counts": self.counts,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> IngestState:
        return cls(
            capacity=state["capacity"],
            recent_events=OrderedDict((event, None) for event in state["recent_events"]),
            latest={key: dict(value) for key, value in state["latest"].items()},
            counts=dict(state["counts"]),
        )


def _count(state: IngestState, verdict: Verdict, entity: str) -> None:
    name = f"{entity}.{verdict.value}"
    state.counts[name] = state.counts.get(name, 0) + 1


def remember_event(state: IngestState, agency_id: str, event_id: str) -> bool:
    """True when the event is new; False for a replay. Evicts the oldest id past capacity."""
    token = f"{agency_id}:{event_id}"
    if token in state.recent_events:
        state.recent_events.move_to_end(token)
        return False
    state.recent_events[token] = None
    while len(state.recent_events) > state.capacity:
        state.recent_events.popitem(last=False)
    return True


def accept_event(state: IngestState, event: Mapping[str, Any], entity: str) -> Verdict:
    """Decide one decoded event (envelope fields plus payload) and update the state.

    ``event`` needs agency_id, event_id, source_record_id, source_version and op; an
    accepted UPSERT's payload becomes the source record's latest state.
    """
    agency_id = event["agency_id"]
    if not remember_event(state, agency_id, event["event_id"]):
        _count(state, Verdict.REPLAYED, entity)
        return Verdict.REPLAYED
    key = f"{agency_id}:{event['source_record_id']}"
    held = state.latest.get(key)
    if held is not None and event["source_version"] <= held["source_version"]:
        _count(state, Verdict.STALE, entity)
        return Verdict.STALE
    deleted = event["op"] == "DELETE"
    state.latest[key] = {
        "source_version": event["source_version"],
        "deleted": deleted,
        "payload": None if deleted else event.get("payload"),
    }
    _count(state, Verdict.ACCEPTED, entity)
    return Verdict.ACCEPTED


def latest_state(
    state: IngestState, agency_id: str, source_record_id: str
) -> dict[str, Any] | None:
    """The latest accepted version of a source record (a tombstone dict once deleted)."""
    return state.latest.get(f"{agency_id}:{source_record_id}")
