"""Ingest's pure rules: replays, stale versions, checks against topic and key, golden records
of non-person entities, dead-letter headers and topic names. Nothing running."""

from __future__ import annotations

import uuid

import pytest

from schemas.dead_letters import (
    REASONS,
    DeadLetter,
    Rejected,
    dead_letter_headers,
    read_dead_letter_headers,
)
from schemas.errors import UnknownSchemaError, WireFormatError, WrongSchemaError
from schemas.examples import example_delete, example_event
from schemas.topics import TopicNames
from streams.ingest import (
    REMEMBERED_EVENT_IDS,
    Held,
    Verdict,
    check_event,
    entity_golden_id,
    golden_entity,
    judge,
    remember,
)

POLICE = "police-ctu"


def test_first_event_of_a_record_is_accepted() -> None:
    assert judge(None, "e1", 1) is Verdict.ACCEPT


def test_replayed_event_id_is_a_replay_even_with_a_newer_version() -> None:
    held = remember(None, "e1", 1)
    assert judge(held, "e1", 1) is Verdict.REPLAY
    assert judge(held, "e1", 9) is Verdict.REPLAY


def test_older_or_equal_version_with_a_new_event_id_is_stale() -> None:
    held = remember(None, "e1", 5)
    assert judge(held, "e2", 4) is Verdict.STALE
    assert judge(held, "e3", 5) is Verdict.STALE
    assert judge(held, "e4", 6) is Verdict.ACCEPT


def test_memory_per_record_is_bounded() -> None:
    held = None
    for version in range(50):
        held = remember(held, f"e{version}", version)
    assert held is not None
    assert len(held.event_ids) == REMEMBERED_EVENT_IDS
    assert held.source_version == 49
    # a replay older than the window is still dropped, as stale
    assert judge(held, "e3", 3) is Verdict.STALE


def test_a_stale_event_never_lowers_the_held_version() -> None:
    held = remember(remember(None, "e1", 7), "e0", 2)
    assert held.source_version == 7


def test_held_survives_its_changelog_form() -> None:
    held = remember(remember(None, "e1", 1), "e2", 2)
    assert Held.from_json(held.to_json()) == held
    assert Held.from_json(None) is None


def _key(event: dict) -> bytes:
    return f"{event['agency_id']}:{event['source_record_id']}".encode()


def test_an_event_of_another_agency_than_its_topic_is_rejected() -> None:
    event = example_event("person", POLICE, "P-1")
    with pytest.raises(Rejected) as caught:
        check_event("immigration", "person", _key(event), event)
    assert caught.value.dead_letter.reason == "agency_mismatch"
    assert "immigration" in caught.value.dead_letter.detail


def test_an_event_keyed_by_another_record_is_rejected() -> None:
    event = example_event("person", POLICE, "P-1")
    with pytest.raises(Rejected) as caught:
        check_event(POLICE, "person", b"police-ctu:P-2", event)
    assert caught.value.dead_letter.reason == "key_mismatch"


def test_an_upsert_without_payload_is_rejected() -> None:
    event = example_event("case", POLICE, "C-1", payload=None)
    with pytest.raises(Rejected) as caught:
        check_event(POLICE, "case", _key(event), event)
    assert caught.value.dead_letter.reason == "invalid_envelope"


def test_a_valid_event_passes_with_its_ids() -> None:
    event = example_event("case", POLICE, "C-1")
    checked = check_event(POLICE, "case", _key(event), event)
    assert (checked.held_key, checked.source_key) == ("case:police-ctu:C-1", "police-ctu:C-1")


def test_a_case_becomes_its_golden_record_versioned_by_its_source_version() -> None:
    event = example_event("case", POLICE, "C-1", source_version=12)
    golden_id, value = golden_entity(check_event(POLICE, "case", _key(event), event))
    assert golden_id == entity_golden_id("case", POLICE, "C-1")
    assert value is not None
    assert value["case_id"] == golden_id and value["golden_version"] == 12
    assert value["case_ref"] == event["payload"]["case_ref"]
    assert value["sources"][0]["source_record_id"] == "C-1"


def test_a_delete_becomes_a_tombstone() -> None:
    event = example_delete("case", POLICE, "C-1")
    assert golden_entity(check_event(POLICE, "case", _key(event), event))[1] is None


def test_golden_ids_are_uuid5_per_entity() -> None:
    case_id = entity_golden_id("case", POLICE, "R-1")
    assert uuid.UUID(case_id).version == 5
    assert case_id == entity_golden_id("case", POLICE, "R-1")
    assert case_id != entity_golden_id("location", POLICE, "R-1")


def test_dead_letter_headers_name_reason_and_origin_only() -> None:
    headers = dead_letter_headers(
        DeadLetter("undecodable", "message has 3 bytes"), "ingest", "tip.agency.x.person", 2, 41
    )
    read = read_dead_letter_headers(headers)
    assert read["tipsync.reason"] == "undecodable"
    assert (read["tipsync.source_partition"], read["tipsync.source_offset"]) == ("2", "41")
    assert set(read) == {
        "tipsync.stage", "tipsync.reason", "tipsync.detail", "tipsync.source_topic",
        "tipsync.source_partition", "tipsync.source_offset", "tipsync.failed_at",
    }


def test_an_unknown_dead_letter_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="REASONS"):
        DeadLetter("no such reason", "")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (UnknownSchemaError("schema id 7 is not in the registry"), "unknown_schema"),
        (WrongSchemaError("schema id 3 is a x record, but this topic carries y"), "wrong_schema"),
        (WireFormatError("message starts with byte 103, not the magic byte 0"), "undecodable"),
    ],
)
def test_deserializer_errors_map_to_reasons_by_type(error: WireFormatError, reason: str) -> None:
    # the reason comes from the error's type, never from its text
    assert error.reason == reason and reason in REASONS


def test_topic_names_follow_the_root() -> None:
    topics = TopicNames("tip")
    assert topics.parse_agency("tip.agency.police-ctu.person") == ("police-ctu", "person")
    assert topics.parse_agency("tip.agency.police-ctu.vehicle") is None
    assert topics.parse_agency("tip.reconciled.person") is None
    assert TopicNames("t1").parse_agency("t1.agency.customs.case") == ("customs", "case")
    assert topics.resolve == "tip.internal.resolve"
    assert topics.dlq("ingest") == "tip.dlq.ingest"
