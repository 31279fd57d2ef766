"""The live minute's changes: rows the producer accepts, timed by their own updated_at."""

import random

import pytest

from deploy.demo.live import make_change
from producers.canonical import Entity
from producers.records import to_source_record

PERSON_ROW = {
    "source_record_id": "CTU-000123", "given_name": "Tamika", "middle_name": "",
    "family_name": "Brown", "aliases": "", "date_of_birth": "1990-04-02", "sex": "F",
    "citizenship": "JM", "trn": "", "nin": "", "passport_number": "", "passport_country": "",
    "phone": "876-555-0100", "email": "", "address": "", "parish": "St. Ann", "role": "",
    "case_ref": "", "updated_at": "2026-01-01T00:00:00Z", "deleted": "", "source_version": "",
}


def test_every_kind_of_live_change_is_a_row_the_producer_accepts() -> None:
    rng = random.Random(5)
    kinds = set()
    for _ in range(60):
        change = make_change(rng, [PERSON_ROW])
        record = to_source_record(change.entity, change.row)
        kinds.add(change.kind)
        assert record.deleted == (change.kind == "delete")
        assert change.entity is (Entity.REPORT if change.kind == "report" else Entity.PERSON)
    assert kinds == {"update", "delete", "report"}


def test_a_live_change_is_timed_from_the_updated_at_it_carries() -> None:
    # Freshness is commit time minus this moment, so it must be the event's event_time.
    change = make_change(random.Random(1), [PERSON_ROW])
    record = to_source_record(change.entity, change.row)
    assert record.updated_at is not None
    assert record.updated_at.timestamp() == pytest.approx(change.event_time, abs=1e-3)
