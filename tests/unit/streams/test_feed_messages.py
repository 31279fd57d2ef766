"""The agencies' feeds from resolve's outputs (``streams.feeds``): who is told what, within
which clearance. Nothing running; all people synthetic."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, datetime
from typing import Any

import fastavro

from schemas.agencies import Agency
from schemas.catalogue import governed_schema
from schemas.entities import FEED_MESSAGE
from schemas.examples import example_event
from schemas.outbound import FEED_MESSAGE_NAMESPACE, feed_message_id, within_clearance
from schemas.topics import TopicNames
from streams.feeds import AgencyFeeds, _PersonViews, feed_messages
from streams.ingest import AgencyEvent, check_event
from streams.resolve import Resolver
from streams.resolve_stage import Output, ResolveStage

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
AGENCIES = {
    agency_id: Agency(id=agency_id, name=agency_id, kind="government", clearance=clearance)
    for agency_id, clearance in (("police-ctu", "SENSITIVE"), ("immigration", "SENSITIVE"),
                                 ("victim-services", "VICTIM_PROTECTED"),
                                 ("customs", "OFFICIAL"))
}


def _person(agency: str, record: str, classification: str = "SENSITIVE",
            **payload: Any) -> AgencyEvent:
    event = example_event("person", agency, record, classification=classification)
    event["payload"].update(payload)
    key = f"{agency}:{record}".encode()
    return check_event(agency, "person", key, event)


def _feed(stage: ResolveStage, outputs: list[Output]) -> list[dict[str, Any]]:
    return [message for output in outputs
            for message in feed_messages(output, stage.resolver, AGENCIES, NOW)]


def _encodes(message: dict[str, Any]) -> None:
    fastavro.schemaless_writer(io.BytesIO(), governed_schema(FEED_MESSAGE).parsed, message)


def test_an_agency_is_alerted_when_another_reports_its_person_and_others_hear_nothing() -> None:
    stage = ResolveStage(Resolver)
    first = _feed(stage, stage.apply(_person("police-ctu", "P-1"), golden_version=0))
    assert [(m["agency_id"], m["kind"]) for m in first] == [("police-ctu", "GOLDEN_CHANGED")]

    messages = _feed(stage, stage.apply(_person("immigration", "I-1"), golden_version=1))
    told = sorted((m["agency_id"], m["kind"]) for m in messages)
    # both sides learn that the other knows the person (the merged cluster took a new id,
    # so the police record moved into it too)
    assert told == [("immigration", "GOLDEN_CHANGED"), ("immigration", "RECORD_REPORTED"),
                    ("police-ctu", "GOLDEN_CHANGED"), ("police-ctu", "RECORD_REPORTED")]
    alert = next(m for m in messages
                 if m["kind"] == "RECORD_REPORTED" and m["agency_id"] == "police-ctu")
    assert alert["reported_by"] == {"agency_id": "immigration", "source_record_id": "I-1"}
    assert alert["your_records"] == ["P-1"]
    assert alert["golden_version"] == 1
    assert alert["person"]["family_name"] == "Fictiona"
    assert not any(m["agency_id"] in ("customs", "victim-services") for m in messages)
    for message in messages:
        _encodes(message)
    # the same output again (a replay after a crash) makes the same message ids
    again = _feed(stage, [Output("mapping", "immigration:I-1",
                                 {"person_id": alert["person_id"], "golden_version": 1,
                                  "source_version": 3})])
    assert [m["message_id"] for m in again] == [alert["message_id"]]


def test_a_victim_protected_record_never_reaches_an_agency_below_that_clearance() -> None:
    stage = ResolveStage(Resolver)
    stage.apply(_person("police-ctu", "P-1", phones=[]), golden_version=0)
    shelter_phone = "+18765550199"
    messages = _feed(stage, stage.apply(
        _person("victim-services", "V-1", "VICTIM_PROTECTED", phones=[shelter_phone]),
        golden_version=1,
    ))
    police = [m for m in messages if m["agency_id"] == "police-ctu"]
    assert sorted(m["kind"] for m in police) == ["GOLDEN_CHANGED", "RECORD_REPORTED"]
    for message in police:
        assert message["classification"] == "SENSITIVE"
        assert shelter_phone not in str(message)
        assert "victim-services" not in str(message)
        assert message["holders"] == []
        assert message["reported_by"] is None
        _encodes(message)
    victim = next(m for m in messages if m["agency_id"] == "victim-services")
    assert victim["person"]["phones"] == [shelter_phone]
    assert victim["holders"] == [{"agency_id": "police-ctu", "source_record_id": "P-1"}]
    assert victim["classification"] == "VICTIM_PROTECTED"


def test_a_link_touching_an_agency_person_is_announced_its_role_within_clearance() -> None:
    stage = ResolveStage(Resolver)
    stage.apply(_person("immigration", "I-1"), golden_version=0)
    stage.apply(_person("police-ctu", "P-1"), golden_version=1)
    payload = {**example_event("link")["payload"], "from_record_id": "P-1"}
    for classification, role in (("SENSITIVE", "VICTIM"), ("VICTIM_PROTECTED", None)):
        link = example_event("link", "police-ctu", "L-1", payload=payload,
                             classification=classification)
        event = check_event("police-ctu", "link", b"police-ctu:L-1", link)
        messages = _feed(stage, stage.apply(event, golden_version=2))
        assert [(m["agency_id"], m["kind"]) for m in messages] == [
            ("immigration", "LINK_REPORTED")]
        assert messages[0]["link"]["link_role"] == role
        assert (messages[0]["reported_by"] is None) == (role is None)
        _encodes(messages[0])


def test_clearance_reads_a_missing_or_unknown_label_as_the_most_protective() -> None:
    assert within_clearance("OFFICIAL", "SENSITIVE")
    assert not within_clearance("VICTIM_PROTECTED", "SENSITIVE")
    assert not within_clearance(None, "SENSITIVE")
    assert not within_clearance("SECRET", "SENSITIVE")
    assert within_clearance(None, "VICTIM_PROTECTED")
    assert not within_clearance("OFFICIAL", "NONE")


def test_agency_feeds_send_to_each_agency_topic_keyed_by_golden_id_without_headers() -> None:
    sent: list[tuple[str, bytes | None, bytes | None, Any]] = []

    async def send(topic: str, key: bytes | None, value: bytes | None,
                   partition: int | None = None, headers: Any = None,
                   on_delivered: Any = None) -> None:
        sent.append((topic, key, value, headers))

    def serialize(message: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, governed_schema(FEED_MESSAGE).parsed, message)
        return buffer.getvalue()

    stage = ResolveStage(Resolver)
    feeds = AgencyFeeds(send=send, topics=TopicNames("t1"), serialize=lambda: serialize,
                        agencies=AGENCIES, resolver=lambda: stage.resolver, clock=lambda: NOW)
    for version, event in enumerate((_person("police-ctu", "P-1"),
                                     _person("immigration", "I-1"))):
        for output in stage.apply(event, golden_version=version):  # published as made
            asyncio.run(feeds(output))
    assert {topic for topic, *_ in sent} == {"t1.outbound.police-ctu", "t1.outbound.immigration"}
    person_ids = {stage.resolver.person_of("police-ctu", "P-1").encode()}  # type: ignore[union-attr]
    assert {key for _, key, _, _ in sent[-4:]} == person_ids
    assert all(headers is None for *_, headers in sent)
    assert feeds.sent == len(sent) == 5


def test_the_golden_person_resolve_published_is_the_view_of_a_clearance_seeing_every_record(
) -> None:
    # The feeds show the published golden person to a clearance that sees every record
    # instead of making it again (``_PersonViews.seed``): each message must show what
    # survivorship makes of the records within the recipient's clearance, whichever way.
    stage = ResolveStage(Resolver)
    events = [
        _person("police-ctu", "P-1", given_name="Ana", phones=["+18765550101"]),
        _person("immigration", "I-1", given_name="Anna", date_of_birth="1990-02-03"),
        _person("victim-services", "V-1", classification="VICTIM_PROTECTED",
                phones=["+18765550199"]),
        _person("customs", "C-1", classification="OFFICIAL", sex="FEMALE"),
    ]
    shown_whole = shown_part = 0
    for offset, event in enumerate(events):
        cache: dict[str, Any] = {}
        for output in stage.apply(event, golden_version=offset):
            for message in feed_messages(output, stage.resolver, AGENCIES, NOW, cache):
                clearance = AGENCIES[message["agency_id"]].clearance
                made_again = _PersonViews(message["person_id"], stage.resolver).view(clearance)
                assert (message["person"], message["classification"]) == made_again
                views = cache[message["person_id"]]
                sees_all = all(within_clearance(record.classification, clearance)
                               for record in views.records)
                if views._whole is not None and sees_all:
                    shown_whole += 1
                else:
                    shown_part += 1
    assert shown_whole and shown_part  # both ways were taken


def test_a_feed_message_id_is_the_uuid5_of_recipient_kind_subject_and_version():
    for agency, kind, subject, version in [
        ("police-ctu", "GOLDEN_CHANGED", "0b8e6c3e-5f1d-4a52-9d39-2f4a7c1e8b64", 1),
        ("hope-line-ngo", "RECORD_REPORTED", "police-ctu:P-100", 2**62),
        ("immigration", "LINK_REPORTED", "a:b", 0),
    ]:
        name = f"{agency}|{kind}|{subject}|{version}"
        assert feed_message_id(agency, kind, subject, version) == str(
            uuid.uuid5(FEED_MESSAGE_NAMESPACE, name))
