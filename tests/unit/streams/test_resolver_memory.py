"""The compact forms the resolver holds give back exactly what was stored, and leave nothing
behind. All people here are invented."""

from __future__ import annotations

import json
import random
import uuid

from streams.resolve import Resolver
from streams.resolve.records import SourceRecord, person_features, source_record_from_event
from streams.resolve.survivorship import GOLDEN_ID_NAMESPACE, person_golden_id
from tests.unit.streams.test_resolver_replay import TRUST, _record

STORED = {
    "agency_id": "police-ctu", "source_record_id": "P-1", "source_version": 3,
    "event_time": 1_700_000_000_000, "given_name": "Tanya", "middle_name": None,
    "family_name": "Reid", "aliases": ["T Reid"], "date_of_birth": "1990-04-02",
    "dob_precision": "DAY", "sex": "FEMALE", "citizenship": ["JM"],
    "identifiers": [{"scheme": "TRN", "value": "123-456-789", "issuing_country": "JM"}],
    "phones": ["+18765550101"], "emails": ["t.reid@example.org"],
    "addresses": [{"line": "12 Hope Road", "parish": "ST_ANDREW", "country": "JM"}],
    "classification": "SENSITIVE", "date_of_birth_text": None,
    "quality_issues": [{"field": "phone", "problem": "not_e164"}],
    "retention_until": "2036-03-14", "legal_basis": "CONSENT", "consent_ref": "CF-0042",
}


def test_a_held_record_reads_back_as_the_stored_dict():
    held = SourceRecord(STORED, 1_600_000_000_000)
    assert held.to_dict() == {**STORED, "first_event_time": 1_600_000_000_000}
    assert dict(held) == held.to_dict()
    assert held["identifiers"] == STORED["identifiers"]
    assert held.get("no_such_field") is None
    assert json.loads(json.dumps(held.to_dict())) == held.to_dict()


def test_held_records_are_equal_when_their_values_are_even_in_another_key_order():
    reordered = {**STORED, "addresses": [{"country": "JM", "parish": "ST_ANDREW",
                                          "line": "12 Hope Road"}]}
    assert SourceRecord(reordered, 1) == SourceRecord(STORED, 1)
    assert SourceRecord({**STORED, "phones": []}, 1) != SourceRecord(STORED, 1)
    assert SourceRecord(STORED, 2) != SourceRecord(STORED, 1)
    moved = {**reordered, "addresses": [{"country": "JM", "parish": "ST_ANDREW",
                                         "line": "14 Hope Road"}]}
    assert SourceRecord(moved, 1) != SourceRecord(STORED, 1)
    assert SourceRecord({**reordered, "sex": "MALE"}, 1) != SourceRecord(STORED, 1)


def test_features_of_a_held_record_are_those_of_the_stored_dict():
    assert person_features(SourceRecord(STORED, 1)) == person_features(STORED)
    event = {**STORED, "event_time": 1_700_000_000_000}
    assert person_features(source_record_from_event(event)) == person_features(STORED)


def test_deleting_every_record_leaves_no_block_edge_or_cluster_behind():
    rng = random.Random(5)
    resolver = Resolver(TRUST, block_size_cap=8)
    records = [_record(index % 60, agency, index, rng)
               for index, agency in enumerate(["police-ctu", "immigration"] * 150)]
    for record in records:
        resolver.upsert(record)
    assert resolver.clusters()
    for record in records:
        resolver.delete(record["agency_id"], record["source_record_id"])
    assert resolver.clusters() == {}
    assert not resolver.records
    assert not resolver._blocks.blocks and not resolver._edges and not resolver._features
    assert not resolver._person_of and not resolver._members


def test_a_golden_id_is_the_uuid5_of_its_anchor_record_key():
    for key in ("police-ctu:P-1", "immigration:IMM-0000042", "hope-line-ngo:Ä-7", ""):
        assert person_golden_id(key) == str(uuid.uuid5(GOLDEN_ID_NAMESPACE, key))
