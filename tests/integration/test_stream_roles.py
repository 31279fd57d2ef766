"""``tipsync stream --role``: a deployment moves from one worker doing everything to a resolve
worker and an ingest worker (``--role resolve`` / ``--role ingest``, what ``--role split``
starts). Kafka gives the resolve partition only to the resolve worker and the agency
partitions only to the ingest worker, the group's committed offsets carry over (nothing is
resolved twice), and every record arrives."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from confluent_kafka.admin import AdminClient

from deploy.bench.stream import person_event
from deploy.bench.stream_harness import StreamHarness
from schemas.config import Settings

PEOPLE = 120


def _events(first: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(first)
    return [person_event(index, "police-ctu", rng) for index in range(first, first + count)]


def _publish(harness: StreamHarness, events: list[dict[str, Any]]) -> None:
    for event in events:
        harness.publish("person", event)
    harness.flush()


def _assignments(admin: AdminClient, group: str) -> list[set[str]]:
    """The topics each member of the group was given, one set per member."""
    [future] = admin.describe_consumer_groups([group], request_timeout=15).values()
    description = future.result()
    return [
        {tp.topic for tp in member.assignment.topic_partitions}
        for member in description.members
    ]


def test_a_worker_group_split_into_resolve_and_ingest_roles(stack: Settings) -> None:
    harness = StreamHarness(stack, entities=("person",)).setup()
    topics = harness.topics
    try:
        # one worker doing everything, as before
        _publish(harness, _events(0, PEOPLE))
        everything = harness.start_worker(0, store="rocksdb", extra=["--role", "all"])
        harness.wait_for(harness.caught_up, timeout=180, what="the first worker's outputs")
        assert harness.stop_worker(everything) == 0, harness.worker_log(0)
        resolved_before = harness.committed(topics.resolve)
        assert resolved_before >= PEOPLE

        # the same group as two roles
        resolver = harness.start_worker(0, store="rocksdb", extra=["--role", "resolve"])
        ingester = harness.start_worker(1, store="rocksdb", extra=["--role", "ingest"])
        _publish(harness, _events(PEOPLE, PEOPLE))
        harness.wait_for(
            lambda: harness.committed(topics.resolve) >= resolved_before + PEOPLE
            and harness.caught_up(),
            timeout=240, what="the split workers' outputs",
        )

        agency_topic = harness.agency_topic("police-ctu", "person")
        members = _assignments(harness.admin, topics.stream_group)
        resolving = [member for member in members if topics.resolve in member]
        ingesting = [member for member in members if agency_topic in member]
        assert len(members) == 2, members
        assert len(resolving) == 1 and agency_topic not in resolving[0], members
        assert len(ingesting) == 1 and topics.resolve not in ingesting[0], members

        # none left out, and none resolved twice: a resolve message resolved again writes its
        # mappings again with the same golden version (a later merge writes a new version)
        mappings = harness.read(topics.person_mapping)
        assert len({m.key for m in mappings}) == 2 * PEOPLE
        written = Counter((m.key, m.value) for m in mappings)
        assert max(written.values()) == 1, [key for key, n in written.items() if n > 1][:3]
        assert "Traceback" not in harness.worker_log(0) + harness.worker_log(1)
        for worker in (resolver, ingester):
            assert harness.stop_worker(worker) == 0
    finally:
        harness.teardown()
