"""Issue 15, erasure, on the real stack: ``tipsync erase`` removes a record from the store,
from its agency topic, the resolve topic and the dead-letter topics once they are compacted,
and from the resolve snapshots; ``--person`` removes every source of a golden person; the
erasure is on record in ``reconciled.erasure_log``; every agency feed that was sent messages
about an erased person gets a ``RECORD_ERASED``; and the command says what may remain and
until when. (``erasure_pipeline`` says how the topics are made to compact within seconds.)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from schemas.config import Settings
from schemas.entities import FEED_MESSAGE
from schemas.examples import example_event
from schemas.topics import TopicNames, topic_plan, update_topic_configs
from tests.integration.erasure_pipeline import (
    ErasurePipeline,
    erasure_pipeline,
    person_event,
)

GONE = ("police-ctu", "P-ERA-3")  # erased by --agency --record
GONE_KEY = "police-ctu:P-ERA-3"
PEOPLE = [("police-ctu", "P-ERA-1"), ("immigration", "I-ERA-2")]  # one golden person


@pytest.fixture(scope="module")
def erased(stack: Settings) -> Iterator[dict[str, Any]]:
    with erasure_pipeline(stack, "test_erasure") as pipeline:
        pipeline.publish(
            "person",
            person_event("police-ctu", "P-ERA-1", "Zelda", "Erasmo", "900100201"),
            person_event("immigration", "I-ERA-2", "Zelda", "Erasmo", "900100201"),
            person_event("police-ctu", "P-ERA-3", "Quincy", "Forgetta", "900100203"),
            # a copy in the ingest dead-letter topic: a version from the implausible future
            person_event("police-ctu", "P-ERA-3", "Quincy", "Forgetta", "900100203",
                         event_id=str(uuid.uuid4()), source_version=2**62),
        )
        pipeline.publish("case", example_event("case", "police-ctu", "C-ERA-4"),
                         example_event("case", "police-ctu", "C-ERA-9"))
        # Zelda Erasmo is a victim in case C-ERA-9: about her, so erased with her
        link = example_event("link", "police-ctu", "L-ERA-8")
        link["payload"].update(from_record_id="P-ERA-1", to_record_id="C-ERA-9")
        pipeline.publish("link", link)
        pipeline.wait_for(lambda: all(pipeline.stored(*key) for key in [*PEOPLE, GONE])
                          and pipeline.stored("police-ctu", "C-ERA-4", "case")
                          and pipeline.stored("police-ctu", "L-ERA-8", "link"),
                          "the people, the cases and the link in the store")
        (golden,) = {row[0] for row in pipeline.rows(
            "SELECT person_id::text FROM reconciled.person_source"
            " WHERE source_record_id IN ('P-ERA-1', 'I-ERA-2')")}
        (gone_person,) = pipeline.rows("SELECT person_id::text FROM reconciled.person_source"
                                       " WHERE source_record_id = 'P-ERA-3'")[0]
        pipeline.publish_filler()  # a resolve message after them: a snapshot holding them
        pipeline.wait_for(lambda: any(b"Forgetta" in path.read_bytes()
                                      for path in pipeline.snapshots()),
                          "a resolve snapshot holding the people")
        before = {
            "dead_letters": pipeline.copies(pipeline.topics.dlq("ingest"), GONE_KEY),
            "snapshots": [path.read_bytes() for path in pipeline.snapshots()],
            "feeds": _feeds(pipeline),
        }
        record = pipeline.tipsync("erase", "--agency", "police-ctu", "--record", "P-ERA-3",
                                  "--entity", "person", "--yes")
        case = pipeline.tipsync("erase", "--agency", "police-ctu", "--record", "C-ERA-4",
                                "--entity", "case", "--yes")
        person = pipeline.tipsync("erase", "--person", golden, "--yes")
        yield {"pipeline": pipeline, "before": before, "record": record, "case": case,
               "person": person, "golden": golden, "gone_person": gone_person,
               "feeds": _feeds(pipeline), "after": _compacted(pipeline)}


def _feeds(pipeline: ErasurePipeline) -> dict[str, list[dict[str, Any]]]:
    """The messages on each agency's feed now, decoded."""
    harness = pipeline.harness
    return {agency: [harness.deserializer(received.value, expected=FEED_MESSAGE).record
                     for received in harness.read(pipeline.topics.outbound(agency))
                     if received.value is not None]
            for agency in ("police-ctu", "immigration")}


def _compacted(pipeline: ErasurePipeline) -> dict[str, list[bytes | None]]:
    """The erased record's messages on each topic once compaction has removed the values
    (fillers roll the segments), or as they are when the time is up."""
    topics = pipeline.topics
    places = {
        topics.agency("police-ctu", "person"): GONE_KEY,
        topics.dlq("ingest"): GONE_KEY,
        topics.resolve: f"person:{GONE_KEY}",
    }
    found: dict[str, list[bytes | None]] = {}

    def clean() -> bool:
        pipeline.publish_filler()
        found.update({topic: pipeline.copies(topic, key) for topic, key in places.items()})
        return all(value is None for values in found.values() for value in values)

    with suppress(TimeoutError):  # the test names what is left
        pipeline.wait_for(clean, "compaction of the erased record's messages", timeout=120)
    return found


def test_the_commands_succeed_and_say_what_remains_until_when(erased: dict[str, Any]) -> None:
    for name in ("record", "case", "person"):
        result = erased[name]
        assert result.returncode == 0, result.stderr
        assert "copies that may remain, until:" in result.stdout
    out = erased["record"].stdout
    prefix = erased["pipeline"].harness.prefix
    assert f"{prefix}.agency.police-ctu.person: tombstone written" in out
    assert f"{prefix}.dlq.ingest: tombstone written" in out
    assert f"{prefix}.internal.resolve: tombstone written" in out
    assert "max.compaction.lag.ms 1000" in out  # figures from the topic's own config
    assert "Forgetta" not in out + erased["record"].stderr  # ids only, never values


def test_an_erased_record_is_gone_from_the_store(erased: dict[str, Any]) -> None:
    pipeline = erased["pipeline"]
    assert not pipeline.stored(*GONE)
    assert not pipeline.stored("police-ctu", "C-ERA-4", "case")
    assert pipeline.rows("SELECT 1 FROM reconciled.person WHERE family_name = 'Forgetta'") == []
    assert pipeline.rows("SELECT 1 FROM reconciled.\"case\" c JOIN reconciled.case_source s"
                         " USING (case_id) WHERE s.source_record_id = 'C-ERA-4'") == []


def test_erasing_a_person_removes_every_source_and_the_links_to_it(
    erased: dict[str, Any],
) -> None:
    pipeline = erased["pipeline"]
    assert not any(pipeline.stored(*key) for key in PEOPLE)
    assert not pipeline.stored("police-ctu", "L-ERA-8", "link")
    assert pipeline.stored("police-ctu", "C-ERA-9", "case")  # the case is not about her
    assert pipeline.rows("SELECT 1 FROM reconciled.person WHERE person_id = %s::uuid",
                         erased["golden"]) == []
    assert "person police-ctu:P-ERA-1" in erased["person"].stdout
    assert "person immigration:I-ERA-2" in erased["person"].stdout


def test_the_erasure_is_on_record_with_ids_only(erased: dict[str, Any]) -> None:
    rows = erased["pipeline"].rows(
        "SELECT reason, entity, agency_id, source_record_id, requested_person::text,"
        " operator <> '' AND erased_by <> '', completed_at IS NOT NULL"
        " FROM reconciled.erasure_log ORDER BY erasure_id")
    assert [row[1:4] for row in rows] == [
        ("person", "police-ctu", "P-ERA-3"), ("case", "police-ctu", "C-ERA-4"),
        ("person", "immigration", "I-ERA-2"), ("person", "police-ctu", "P-ERA-1"),
        ("link", "police-ctu", "L-ERA-8"),
    ]
    assert {row[0] for row in rows} == {"request"}
    assert all(row[5] and row[6] for row in rows)
    assert {row[4] for row in rows[2:]} == {erased["golden"]}
    # the administrator's only
    assert erased["pipeline"].rows(
        "SELECT has_table_privilege('tipsync_analyst', 'reconciled.erasure_log', 'SELECT'),"
        " has_table_privilege('tipsync_analyst', 'reconciled.erasure_log', 'DELETE')"
    ) == [(False, False)]


def test_the_copies_on_the_topics_are_compacted_away(erased: dict[str, Any]) -> None:
    assert any(value is not None for value in erased["before"]["dead_letters"])
    for topic, values in erased["after"].items():
        assert values and all(value is None for value in values), (
            f"{topic} still holds {sum(v is not None for v in values)} value(s) of the record")


def test_no_resolve_snapshot_holds_the_record(erased: dict[str, Any]) -> None:
    assert any(b"Forgetta" in snapshot for snapshot in erased["before"]["snapshots"])
    after = erased["pipeline"].snapshots()
    assert after, "the worker writes a snapshot at the erasure"
    for path in after:
        data = path.read_bytes()
        assert b"Forgetta" not in data and b"P-ERA-3" not in data, path
        assert b"Erasmo" not in data, path


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {timeout:g} s")
        time.sleep(0.2)


def test_an_agency_topic_of_an_earlier_release_becomes_compacted(stack: Settings) -> None:
    names = TopicNames(f"u{uuid.uuid4().hex[:10]}")
    topic = names.agency("police-ctu", "person")
    admin = AdminClient(stack.client.librdkafka())
    old = {"cleanup.policy": "delete", "retention.ms": str(30 * 24 * 3600 * 1000)}
    admin.create_topics([NewTopic(topic, 1, 1, config=old)])[topic].result()
    # KRaft: the controller has committed the topic and, later, the new configs; the broker
    # answering metadata and DescribeConfigs applies each record when it replays it, so both
    # reads may see the state before for a moment (failed CI once at load 8).
    wait_until(lambda: topic in admin.list_topics(timeout=10).topics, "the topic in metadata")
    try:
        plan = [spec for spec in topic_plan(["police-ctu"], names=names) if spec.name == topic]
        assert update_topic_configs(stack.client, plan) == [topic]
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)

        def described() -> dict[str, str]:
            config = admin.describe_configs([resource])[resource].result()
            return {key: config[key].value
                    for key in ("cleanup.policy", "max.compaction.lag.ms")}

        wanted = {"cleanup.policy": "compact,delete",
                  "max.compaction.lag.ms": str(24 * 3600 * 1000)}
        wait_until(lambda: described() == wanted, "the new configs on the broker")
    finally:
        admin.delete_topics([topic])[topic].result()


def test_the_feeds_that_carried_an_erased_person_tell_their_agencies(
    erased: dict[str, Any],
) -> None:
    before, after = erased["before"]["feeds"], erased["feeds"]
    people = {erased["gone_person"]: {"police-ctu": ["P-ERA-3"]},
              erased["golden"]: {"police-ctu": ["P-ERA-1"], "immigration": ["I-ERA-2"]}}
    for person_id, recipients in people.items():
        for agency, own in recipients.items():
            earlier = [m for m in before[agency] if m["person_id"] == person_id]
            assert earlier, f"{agency} was sent nothing about {person_id} before the erasure"
            (notice,) = [m for m in after[agency]
                         if m["person_id"] == person_id and m["kind"] == "RECORD_ERASED"]
            assert notice["your_records"] == own  # its own records only, never another's
            assert (notice["person"], notice["holders"], notice["reported_by"]) == (
                None, [], None)
            # every message sent before the erasure is below the notice's version
            assert max(m["golden_version"] for m in earlier) < notice["golden_version"]
    # immigration never held Quincy Forgetta, so hears nothing of his erasure
    assert not [m for m in after["immigration"] if m["person_id"] == erased["gone_person"]]
    prefix = erased["pipeline"].harness.prefix
    out = erased["record"].stdout
    assert f"{prefix}.outbound.police-ctu: RECORD_ERASED sent about 1 person(s)" in out
    assert "a feed is not compacted" in out
    assert f"{prefix}.outbound.immigration: RECORD_ERASED" in erased["person"].stdout
