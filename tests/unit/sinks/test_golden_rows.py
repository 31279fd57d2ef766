"""From a reconciled record to the rows the store writes: pure, no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from sinks.records import DELETED, LIVE, MERGED, RecordError, golden_rows
from sinks.tables import PERSON

PERSON_ID = "5dc7b2c1-ebae-4fd7-9d9e-e277ddaa24af"
SURVIVOR_ID = "0b1f4f9e-2f67-4c55-9c55-0d7c1e7c0a11"


def golden_person(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "person_id": PERSON_ID,
        "golden_version": 4,
        "merged_into": None,
        "given_name": "Tamika",
        "middle_name": None,
        "family_name": "Sample",
        "aliases": ["Tami"],
        "date_of_birth": "1994-05-01",
        "dob_precision": "MONTH",
        "sex": "FEMALE",
        "citizenship": ["JM"],
        "identifiers": [{"scheme": "TRN", "value": "000000001", "issuing_country": "JM"}],
        "phones": [],
        "emails": [],
        "addresses": [],
        "classification": "VICTIM_PROTECTED",
        "first_seen": datetime(2024, 1, 2, tzinfo=UTC),
        "last_updated": datetime(2024, 3, 4, tzinfo=UTC),
        "sources": [
            {"agency_id": "police-ctu", "source_record_id": "P-1", "source_version": 7,
             "event_time": datetime(2024, 3, 4, tzinfo=UTC), "deleted": False},
            {"agency_id": "safe-haven-shelter", "source_record_id": "S-9", "source_version": 2,
             "event_time": datetime(2024, 1, 2, tzinfo=UTC), "deleted": False},
            {"agency_id": "immigration", "source_record_id": "I-3", "source_version": 5,
             "event_time": datetime(2024, 2, 1, tzinfo=UTC), "deleted": True},
        ],
        "lineage": [
            {"field": "given_name", "agency_id": "police-ctu", "source_record_id": "P-1",
             "source_version": 7, "event_time": datetime(2024, 3, 4, tzinfo=UTC)},
        ],
    }
    record.update(overrides)
    return record


def test_a_live_record_counts_only_undeleted_sources_and_their_agencies() -> None:
    rows = golden_rows(PERSON, PERSON_ID, golden_person())
    assert rows.state == LIVE
    assert rows.golden_version == 4
    assert rows.agencies == ("police-ctu", "safe-haven-shelter")
    assert rows.source_count == 2


def test_a_live_record_travels_as_json_with_iso_timestamps() -> None:
    rows = golden_rows(PERSON, PERSON_ID, golden_person())
    document = json.loads(rows.record_json or "")
    assert document["given_name"] == "Tamika"
    assert document["last_updated"] == "2024-03-04T00:00:00+00:00"
    assert document["sources"][2]["deleted"] is True  # kept, marked deleted, in the store
    assert document["lineage"][0]["field"] == "given_name"


def test_a_tombstone_deletes_and_carries_no_version() -> None:
    rows = golden_rows(PERSON, PERSON_ID, None)
    assert (rows.state, rows.golden_version, rows.record_json) == (DELETED, None, None)


def test_a_merged_record_names_its_survivor_and_nothing_else() -> None:
    rows = golden_rows(PERSON, PERSON_ID, golden_person(merged_into=SURVIVOR_ID, sources=[]))
    assert (rows.state, rows.merged_into, rows.record_json) == (MERGED, SURVIVOR_ID, None)


def test_a_record_merged_into_itself_is_refused() -> None:
    with pytest.raises(RecordError, match="merged_into names the record itself"):
        golden_rows(PERSON, PERSON_ID, golden_person(merged_into=PERSON_ID))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"golden_version": None}, "golden_version is missing"),
        ({"golden_version": -1}, "golden_version is outside"),
        ({"merged_into": "Tamika Sample"}, "merged_into is not a UUID"),
        ({"date_of_birth": "1994-02-31"}, "date_of_birth is not a date"),
        ({"family_name": "Sam\x00ple"}, "contains a NUL character"),
        ({"sources": [{"agency_id": "police-ctu"}]}, r"sources\[0\] lacks agency_id"),
    ],
)
def test_an_invalid_field_is_named_without_its_value(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(RecordError, match=message) as raised:
        golden_rows(PERSON, PERSON_ID, golden_person(**overrides))
    for value in overrides.values():
        if isinstance(value, str):
            assert value not in str(raised.value)
