"""deploy/operations/dlq.py: dead-letter IDs, the operator's view (no key, no value), and where
a replay may publish, without Kafka."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deploy.operations.dlq import (
    DeadLetterError,
    DeadLetterId,
    Message,
    entry_of,
    parse_dead_letter_id,
    plan_replay,
    render_entry,
    render_list,
    replay_target,
    select,
    sink_golden_record,
)
from schemas.dead_letters import DeadLetter, dead_letter_headers, dead_letter_key
from schemas.topics import TopicNames

NAMES = TopicNames("t1")
RECORD_KEY = b"police-ctu:R-4711"


def letter(stage: str, source_topic: str, reason: str = "unknown_schema", offset: int = 7,
           key: bytes | None = RECORD_KEY) -> Message:
    headers = dead_letter_headers(
        DeadLetter(reason, "schema id 999 is not in the registry; register it, then replay"),
        stage, source_topic, 2, 41, datetime(2026, 5, 1, tzinfo=UTC))
    return Message(partition=1, offset=offset, timestamp_ms=0,
                   key=dead_letter_key(key, source_topic, 2, 41),
                   value=b"\x00\x00\x00\x03\xe7Odessa Inventa", headers=headers)


def test_an_id_is_the_place_on_the_dead_letter_topic_and_reads_back() -> None:
    entry = entry_of("ingest", letter("ingest", NAMES.agency("police-ctu", "case")))
    assert str(entry.id) == "ingest:1:7"
    assert parse_dead_letter_id("ingest:1:7") == DeadLetterId("ingest", 1, 7)
    for wrong in ("ingest:1", "police-ctu:R-4711", "outbound:0:1", "ingest:-1:2"):
        with pytest.raises(DeadLetterError, match="expected <stage>:<partition>:<offset>"):
            parse_dead_letter_id(wrong)


def test_list_and_show_print_the_headers_but_never_the_key_or_the_value() -> None:
    entry = entry_of("ingest", letter("ingest", NAMES.agency("police-ctu", "case")))
    shown = render_list([entry]) + render_entry(entry) + str(entry.as_json())
    assert "unknown_schema" in shown and "t1.agency.police-ctu.case[2]@41" in shown
    assert "R-4711" not in shown and "Odessa" not in shown
    assert entry.value_bytes == len(b"\x00\x00\x00\x03\xe7Odessa Inventa")


def test_a_message_without_the_formats_headers_is_shown_not_skipped() -> None:
    entry = entry_of("sink", Message(0, 3, 0, b"k", b"v", ()))
    assert entry.reason == "unknown" and "not written by a stage" in entry.detail
    assert select([entry], None) == [entry] and select([entry], "undecodable") == []


def test_a_replay_goes_back_to_its_stages_input_under_the_root() -> None:
    agency_topic = NAMES.agency("police-ctu", "person")
    assert replay_target(entry_of("ingest", letter("ingest", agency_topic)), NAMES) == agency_topic
    assert replay_target(entry_of("resolve", letter("resolve", NAMES.resolve)), NAMES) \
        == NAMES.resolve
    reconciled = NAMES.reconciled("case")
    assert replay_target(entry_of("sink", letter("sink", reconciled)), NAMES) == reconciled
    # never to another stage's input, another root's topic, or an agency's feed
    for stage, topic in (("ingest", NAMES.resolve), ("sink", agency_topic),
                         ("ingest", TopicNames("tip").agency("police-ctu", "person")),
                         ("sink", NAMES.outbound("police-ctu"))):
        with pytest.raises(DeadLetterError, match="is not an input of the"):
            replay_target(entry_of(stage, letter(stage, topic)), NAMES)


def test_a_letter_whose_message_had_no_key_is_refused_with_what_to_do() -> None:
    entry = entry_of("ingest", letter("ingest", NAMES.agency("police-ctu", "case"), key=None))
    assert not entry.had_key
    with pytest.raises(DeadLetterError, match="must publish the record again"):
        replay_target(entry, NAMES)


def test_a_replay_leaves_letters_replayed_before_unless_asked_again() -> None:
    topic = NAMES.agency("police-ctu", "case")
    first, second = (entry_of("ingest", letter("ingest", topic, offset=n)) for n in (1, 2))
    stray = entry_of("ingest", letter("ingest", NAMES.resolve, offset=3))
    plan = plan_replay([first, second, stray], NAMES, frozenset({"ingest:1:1"}))
    assert [entry for entry, _ in plan.to_publish] == [second]
    assert plan.replayed_before == (first,)
    assert [entry for entry, _ in plan.refused] == [stray]
    again = plan_replay([first, second], NAMES, frozenset({"ingest:1:1"}), again=True)
    assert [entry for entry, _ in again.to_publish] == [first, second]


def test_a_sink_letter_the_store_has_superseded_is_refused_and_others_go() -> None:
    topic = NAMES.reconciled("person")
    golden = b"0b7f5c1e-0000-4000-8000-000000000001"
    old, fresh = (entry_of("sink", letter("sink", topic, offset=n, key=golden)) for n in (1, 2))
    decision = entry_of("sink", letter("sink", NAMES.reconciled("match_decision"), offset=3))
    assert sink_golden_record(old, NAMES) == ("person", golden.decode())
    assert sink_golden_record(decision, NAMES) is None
    assert sink_golden_record(entry_of("ingest", letter("ingest", NAMES.agency(
        "police-ctu", "person"))), NAMES) is None
    plan = plan_replay([old, fresh, decision], NAMES, frozenset(),
                       superseded={str(old.id): (4, 9)})
    assert [entry for entry, _ in plan.to_publish] == [fresh, decision]
    [(refused, why)] = plan.refused
    assert refused == old and "version 9, not older than the letter's 4" in why
