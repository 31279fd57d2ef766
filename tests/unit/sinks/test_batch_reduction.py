"""Reducing a consumed batch to the last valid change per golden id, without Kafka."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sinks.batch import Message, prepare_batch
from sinks.records import DELETED, RecordError

PERSON_TOPIC = "tip.reconciled.person"
DECISION_TOPIC = "tip.reconciled.match_decision"
TOPICS = {PERSON_TOPIC: "person", DECISION_TOPIC: "match_decision"}
ALICE = "11111111-1111-4111-8111-111111111111"
BOB = "22222222-2222-4222-8222-222222222222"


def decode_json(message: Message, entity: str) -> Mapping[str, Any] | None:
    """Test double for the Avro deserializer: JSON bodies, b'!' for undecodable bytes;
    a field named decided_at holds epoch milliseconds, decoded to a datetime as Avro does."""
    if message.value is None:
        return None
    if message.value == b"!":
        raise RecordError("the value does not decode")
    record = json.loads(message.value)
    if "decided_at" in record:
        record["decided_at"] = datetime.fromtimestamp(record["decided_at"] / 1000, tz=UTC)
    return record


def person_message(offset: int, key: str, version: int | None, partition: int = 0,
                   **fields: Any) -> Message:
    value = None if version is None else json.dumps(
        {"person_id": key, "golden_version": version, "given_name": "Test", **fields}
    ).encode()
    return Message(PERSON_TOPIC, partition, offset, key.encode(), value)


def test_only_the_last_change_per_golden_id_is_kept() -> None:
    batch = prepare_batch(
        [person_message(0, ALICE, 1), person_message(1, BOB, 1), person_message(2, ALICE, 2)],
        TOPICS, decode_json,
    )
    by_id = {change.golden_id: change for change in batch.changes["person"]}
    assert by_id[ALICE].golden_version == 2
    assert by_id[BOB].golden_version == 1
    assert batch.change_count == 2
    assert batch.change_origins[("person", ALICE)].offset == 2


def test_a_tombstone_after_an_update_wins_and_carries_its_version() -> None:
    batch = prepare_batch([person_message(0, ALICE, 3), person_message(1, ALICE, None)],
                          TOPICS, decode_json)
    assert [(change.state, change.golden_version) for change in batch.changes["person"]] == [
        (DELETED, 3)
    ]
    assert batch.change_origins[("person", ALICE)].offset == 1


def test_a_tombstone_after_a_merge_carries_the_survivor() -> None:
    batch = prepare_batch(
        [person_message(0, ALICE, 2, merged_into=BOB), person_message(1, ALICE, None)],
        TOPICS, decode_json,
    )
    (change,) = batch.changes["person"]
    assert (change.state, change.golden_version, change.merged_into) == (DELETED, 2, BOB)


def test_a_lone_tombstone_has_no_version() -> None:
    batch = prepare_batch([person_message(0, ALICE, None)], TOPICS, decode_json)
    assert [change.golden_version for change in batch.changes["person"]] == [None]


def test_an_undecodable_last_change_is_rejected_and_the_previous_one_written() -> None:
    broken = Message(PERSON_TOPIC, 0, 2, ALICE.encode(), b"!")
    batch = prepare_batch([person_message(0, ALICE, 1), person_message(1, ALICE, 2), broken],
                          TOPICS, decode_json)
    assert [change.golden_version for change in batch.changes["person"]] == [2]
    assert [(r.message.offset, r.letter.detail) for r in batch.rejections] == [
        (2, "the value does not decode")
    ]


def test_a_key_that_is_not_a_uuid_is_rejected_without_echoing_it() -> None:
    message = Message(PERSON_TOPIC, 0, 0, b"Jane Doe", b"{}")
    batch = prepare_batch([message], TOPICS, decode_json)
    assert not batch.changes
    assert "not a UUID" in batch.rejections[0].letter.detail
    assert "Jane" not in batch.rejections[0].letter.detail


def test_a_record_whose_id_differs_from_its_key_is_rejected() -> None:
    value = json.dumps({"person_id": BOB, "golden_version": 1}).encode()
    batch = prepare_batch([Message(PERSON_TOPIC, 0, 0, ALICE.encode(), value)],
                          TOPICS, decode_json)
    assert "person_id differs from the message key" in batch.rejections[0].letter.detail


def test_next_offsets_are_one_past_the_last_message_of_each_partition() -> None:
    batch = prepare_batch(
        [person_message(5, ALICE, 1, partition=0), person_message(9, BOB, 1, partition=1),
         person_message(6, ALICE, 2, partition=0)],
        TOPICS, decode_json,
    )
    assert batch.next_offsets == {(PERSON_TOPIC, 0): 7, (PERSON_TOPIC, 1): 10}


def test_offsets_advance_past_rejected_messages_too() -> None:
    batch = prepare_batch([Message(PERSON_TOPIC, 0, 4, b"bad key", b"{}")], TOPICS, decode_json)
    assert batch.next_offsets == {(PERSON_TOPIC, 0): 5}


def test_match_decisions_are_all_kept_in_order() -> None:
    def decision(offset: int, score: float) -> Message:
        value = {
            "left": {"agency_id": "police-ctu", "source_record_id": "P-1"},
            "right": {"agency_id": "immigration", "source_record_id": "I-1"},
            "score": score, "features": {"name": 0.5}, "rule": "fellegi-sunter-v1",
            "decision": "MATCH", "decided_at": 1_700_000_000_000 + offset,
        }
        return Message(DECISION_TOPIC, 0, offset, None, json.dumps(value).encode())

    batch = prepare_batch([decision(0, 0.9), decision(1, 0.95)], TOPICS, decode_json)
    assert [row[5] for row in batch.match_decisions] == [0.9, 0.95]
    assert {row[-1] for row in batch.match_decisions} == {"MATCH"}
