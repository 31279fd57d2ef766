"""The same events replayed in a shuffled order give the same clusters and golden records.

Three runs, each under a prefix of its own with its own worker, receive the same person
events (people at two agencies, later versions, deletes):

- in publishing order;
- shuffled across records, each record's own versions still in order (what Kafka keeps: the
  order per key): the same golden ids and golden records;
- shuffled completely, versions of a record included: older versions arriving after newer
  ones are dropped as stale, so the run ends on the same source records and the same
  clusters; golden ids may differ, because the resolver anchors a cluster's id on the
  earliest event time it has *seen* of a record (see docs/STREAMS.md).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from deploy.bench.stream import person_event
from deploy.bench.stream_harness import StreamHarness
from schemas.config import Settings

PEOPLE = 400


def _events() -> list[dict[str, Any]]:
    rng = random.Random(23)
    events = []
    for index in range(PEOPLE):
        events.append(person_event(index, "police-ctu", rng))
        if index % 3 == 0:
            events.append(person_event(index, "immigration", rng))
        if index % 10 == 0:
            changed = person_event(index, "police-ctu", rng)
            changed["source_version"] = 2
            changed["payload"]["emails"] = [f"moved{index}@example.org"]
            events.append(changed)
        if index % 25 == 0:
            gone = person_event(index, "immigration", rng)
            gone.update(op="DELETE", payload=None, source_version=3)
            events.append(gone)
    return events


def _keep_record_order(shuffled: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The shuffled sequence with each record's events put back in their version order."""
    by_record: dict[str, list[dict[str, Any]]] = {}
    for event in sorted(shuffled, key=lambda event: event["source_version"]):
        by_record.setdefault(f"{event['agency_id']}:{event['source_record_id']}", []).append(
            event
        )
    return [by_record[f"{e['agency_id']}:{e['source_record_id']}"].pop(0) for e in shuffled]


def _clusters(mapping: dict[str, str]) -> set[frozenset[str]]:
    members: dict[str, set[str]] = {}
    for key, person_id in mapping.items():
        members.setdefault(person_id, set()).add(key)
    return {frozenset(keys) for keys in members.values()}


def _view(harness: StreamHarness) -> tuple[dict[str, str], dict[str, Any]]:
    mapping = {
        key: value["person_id"]
        for key, value in harness.latest(harness.topics.person_mapping).items()
        if value and value["person_id"]
    }
    people = {
        key: {**value, "golden_version": 0}
        for key, value in harness.latest(harness.topics.reconciled("person")).items()
        if value and not value["merged_into"]
    }
    return mapping, people


Runs = tuple[StreamHarness, StreamHarness, StreamHarness]


@pytest.fixture(scope="module")
def three_orders(stack: Settings) -> Iterator[Runs]:
    events = _events()
    shuffled = list(events)
    random.Random(7).shuffle(shuffled)
    orders = (events, _keep_record_order(shuffled), shuffled)
    runs = [StreamHarness(stack, entities=("person",)).setup() for _ in orders]
    try:
        for harness, order in zip(runs, orders, strict=True):
            for event in order:
                harness.publish("person", event)
            harness.flush()
            harness.start_worker()
        for harness in runs:
            harness.wait_for(harness.caught_up, timeout=120, what="a replay")
        yield runs[0], runs[1], runs[2]
    finally:
        for harness in runs:
            harness.teardown()


def test_records_shuffled_give_the_same_golden_ids_and_records(three_orders: Runs) -> None:
    in_order, shuffled, _ = three_orders
    expected_mapping, expected_people = _view(in_order)
    mapping, people = _view(shuffled)
    assert len(expected_mapping) > PEOPLE  # people at both agencies, the deleted ones gone
    assert len(set(mapping.values())) < len(mapping)  # some people were merged
    assert mapping == expected_mapping
    assert people == expected_people


def test_events_shuffled_versions_included_give_the_same_clusters(three_orders: Runs) -> None:
    in_order, _, fully_shuffled = three_orders
    expected_mapping, _ = _view(in_order)
    mapping, _ = _view(fully_shuffled)
    assert set(mapping) == set(expected_mapping)
    assert _clusters(mapping) == _clusters(expected_mapping)
