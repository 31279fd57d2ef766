"""Ingest and resolve through the real stack: one worker process, topics of this module's own.

One scripted run (published before the worker starts, so arrival order is fixed per
partition) is checked from several sides: replays and stale versions dropped, DELETEs
applied, poison messages in the dead-letter topic while the good data goes on, people
resolved across agencies, links pointing at golden ids, and the counters that say so.
"""

from __future__ import annotations

import socket
import struct
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from deploy.bench.stream_harness import StreamHarness
from schemas.config import Settings
from schemas.examples import example_delete, example_event, example_uuid
from streams.ingest import entity_golden_id

POLICE, IMMIGRATION = "police-ctu", "immigration"


def _case(record: str, version: int, label: str) -> dict[str, Any]:
    return example_event("case", POLICE, record, source_version=version,
                         event_id=example_uuid(f"{record}:{label}"))


def _person(agency: str, record: str, version: int = 1, **payload: Any) -> dict[str, Any]:
    event = example_event("person", agency, record, source_version=version,
                          event_id=example_uuid(f"{agency}:{record}:{version}"))
    event["payload"].update(payload)
    return event


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def run(stack: Settings) -> Iterator[tuple[StreamHarness, int]]:
    harness = StreamHarness(stack).setup()
    publish = harness.publish
    # cases: a replay, a stale version, an update, a delete
    first = _case("C-1", 1, "first")
    publish("case", first)
    publish("case", first)  # replayed: same agency and event_id
    publish("case", _case("C-1", 2, "second"))
    publish("case", _case("C-1", 1, "late"))  # another event with an older version: stale
    publish("case", _case("C-2", 1, "first"))
    delete = example_delete("case", POLICE, "C-2")
    publish("case", {**delete, "source_version": 2, "event_id": example_uuid("C-2:delete")})
    # people: the same person at two agencies, a replay, someone deleted again
    person = _person(POLICE, "P-1")
    publish("person", person)
    publish("person", person)
    publish("person", _person(IMMIGRATION, "I-1"))
    publish("person", _person(IMMIGRATION, "I-2", given_name="Odessa", family_name="Inventa",
                              identifiers=[], phones=[], emails=[], addresses=[],
                              date_of_birth="1971-02-03", dob_precision="DAY", aliases=[]))
    gone = example_delete("person", IMMIGRATION, "I-2")
    publish("person", {**gone, "source_version": 2, "event_id": example_uuid("I-2:delete")})
    publish("link", example_event("link", POLICE, "L-1", payload={
        **example_event("link")["payload"], "from_record_id": "P-1", "to_record_id": "C-1",
    }))
    # poison, each of a different kind
    person_topic = harness.agency_topic(POLICE, "person")
    harness.publish_raw(person_topic, b"police-ctu:X-1", b"not avro at all")
    harness.publish_raw(person_topic, b"police-ctu:X-2", struct.pack(">bI", 0, 999_999) + b"x")
    harness.publish_raw(person_topic, b"police-ctu:C-9", harness.encode("case", _case(
        "C-9", 1, "wrong topic")))
    harness.publish_raw(harness.agency_topic(IMMIGRATION, "person"), b"police-ctu:P-7",
                        harness.encode("person", _person(POLICE, "P-7")))
    # good data after the poison
    publish("case", _case("C-3", 1, "after poison"))
    harness.flush()
    port = _free_port()
    harness.start_worker(extra=["--metrics-port", str(port)])
    try:
        harness.wait_for(harness.caught_up, timeout=90, what="the scripted run")
        yield harness, port
    finally:
        harness.teardown()


def _golden_versions(harness: StreamHarness, topic: str, key: str) -> list[int | None]:
    return [
        None if message.value is None else harness.decode(message.value)["golden_version"]
        for message in harness.read(topic) if message.key == key.encode()
    ]


def test_replayed_and_stale_events_are_dropped(run: tuple[StreamHarness, int]) -> None:
    """A replay of the latest accepted version is sent again, identical (its first output
    may have died with a killed worker, issue 13); a stale version never is."""
    harness, _ = run
    case_one = entity_golden_id("case", POLICE, "C-1")
    assert _golden_versions(harness, harness.topics.reconciled("case"), case_one) == [1, 1, 2]
    forwarded = [m.key for m in harness.read(harness.topics.resolve)]
    assert forwarded.count(b"person:police-ctu:P-1") == 2
    # resolve holds P-1 at that version already: the second one changes nothing
    people = [m for m in harness.read(harness.topics.reconciled("person"))
              if m.value is not None and any(
                  s["source_record_id"] == "P-1" for s in harness.decode(m.value)["sources"])]
    assert len({harness.decode(m.value)["golden_version"] for m in people}) == len(people)


def test_delete_leaves_a_tombstone(run: tuple[StreamHarness, int]) -> None:
    harness, _ = run
    cases = harness.latest(harness.topics.reconciled("case"))
    assert cases[entity_golden_id("case", POLICE, "C-2")] is None
    people = harness.latest(harness.topics.reconciled("person"))
    live = [value for value in people.values() if value and not value["merged_into"]]
    assert all(s["source_record_id"] != "I-2" for value in live for s in value["sources"])
    assert None in people.values()  # I-2's golden person, gone with its only source


def test_poison_reaches_the_dead_letter_topic_and_the_stream_goes_on(
    run: tuple[StreamHarness, int],
) -> None:
    harness, _ = run
    letters = {m.key: m for m in harness.read(harness.topics.dlq("ingest"))}
    reasons = {key: letter.headers["tipsync.reason"] for key, letter in letters.items()}
    assert reasons == {
        b"police-ctu:X-1": "undecodable",
        b"police-ctu:X-2": "unknown_schema",
        b"police-ctu:C-9": "wrong_schema",
        b"police-ctu:P-7": "agency_mismatch",
    }
    assert letters[b"police-ctu:X-1"].value == b"not avro at all"
    headers = letters[b"police-ctu:P-7"].headers
    assert headers["tipsync.source_topic"] == harness.agency_topic(IMMIGRATION, "person")
    assert headers["tipsync.stage"] == "ingest" and headers["tipsync.source_offset"].isdigit()
    cases = harness.latest(harness.topics.reconciled("case"))
    assert entity_golden_id("case", POLICE, "C-3") in cases


def test_people_resolve_across_agencies_and_links_point_at_golden_ids(
    run: tuple[StreamHarness, int],
) -> None:
    harness, _ = run
    mapping = harness.latest(harness.topics.person_mapping)
    person_id = mapping["police-ctu:P-1"]["person_id"]
    assert mapping["immigration:I-1"]["person_id"] == person_id
    golden = harness.latest(harness.topics.reconciled("person"))[person_id]
    assert {s["source_record_id"] for s in golden["sources"]} == {"P-1", "I-1"}
    links = harness.latest(harness.topics.reconciled("link"))
    [link] = [value for value in links.values() if value]
    assert link["from_id"] == person_id
    assert link["to_id"] == entity_golden_id("case", POLICE, "C-1")
    decisions = harness.latest(harness.topics.reconciled("match_decision"))
    assert any(value["decision"] == "MATCH" for value in decisions.values() if value)


def test_counters_say_what_was_dropped(run: tuple[StreamHarness, int]) -> None:
    _, port = run
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines() if line.startswith("tipsync_stream_")
    }
    # the replays were of the latest versions: sent again, not dropped
    assert values.get(
        'tipsync_stream_replays_dropped_total{agency="police-ctu",entity="case"}', 0) == 0
    assert values.get(
        'tipsync_stream_replays_dropped_total{agency="police-ctu",entity="person"}', 0) == 0
    assert values['tipsync_stream_stale_dropped_total{agency="police-ctu",entity="case"}'] == 1
    assert values['tipsync_stream_dead_letters_total{reason="undecodable",stage="ingest"}'] == 1
    assert values['tipsync_stream_events_in_total{agency="police-ctu",entity="case"}'] == 7
