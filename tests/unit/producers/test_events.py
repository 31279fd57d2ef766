from __future__ import annotations

from datetime import UTC, datetime

import pytest

from producers.canonical import Entity
from producers.events import Governance, change_event, kafka_key
from producers.records import to_source_record
from producers.versions import decide
from schemas.models import validate_event

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

ROWS: dict[Entity, dict[str, str]] = {
    Entity.PERSON: {
        "source_record_id": "P-1", "given_name": "Ann", "family_name": "Brown",
        "date_of_birth": "1990", "sex": "F", "citizenship": "JM;US", "trn": "123-456-789",
        "passport_number": "a1234567", "passport_country": "jm", "phone": "876-555-1234",
        "email": "ann@example.org", "address": "1 Main St", "parish": "Saint Andrew",
        "role": "VICTIM", "case_ref": "CTU-1", "updated_at": "2024-05-01 10:00",
    },
    Entity.CASE: {
        "source_record_id": "C-1", "case_ref": "CTU-1", "status": "OPEN",
        "opened_on": "2024-01-02", "forms_of_exploitation": "SEXUAL;LABOUR", "parish": "KGN",
    },
    Entity.REPORT: {
        "source_record_id": "R-1", "channel": "hotline", "received_at": "2024-01-02T08:00:00Z",
        "narrative": "A tip.", "parish": "St James",
    },
    Entity.ORGANISATION: {
        "source_record_id": "O-1", "name": "Blue Mountain Farms Ltd", "org_type": "company",
        "address": "Mavis Bank", "parish": "St. Andrew", "phone": "876 927 1234",
    },
    Entity.LOCATION: {
        "source_record_id": "L-1", "name": "Farm", "parish": "Portland", "latitude": "18.1",
        "longitude": "-76.4", "location_role": "exploitation",
    },
    Entity.LINK: {
        "source_record_id": "K-1", "from_entity": "person", "from_record_id": "P-1",
        "to_entity": "organisation", "to_record_id": "O-1", "link_role": "employer",
        "valid_from": "2023-01-01",
    },
}


@pytest.mark.parametrize("entity", list(Entity))
def test_every_entity_yields_an_event_the_contract_accepts(entity: Entity) -> None:
    record = to_source_record(entity, ROWS[entity])
    decision = decide(record, None, 0)
    event = change_event(
        "police-ctu", record, decision.source_version, decision.content_hash, NOW,
        Governance(retention_days=3650),
    )
    validated = validate_event(entity.value, event)
    assert validated.op == "UPSERT"
    assert validated.source_record_id == ROWS[entity]["source_record_id"]
    for derived in record.derived:
        validate_event(derived.entity.value, change_event(
            "police-ctu", derived, decision.source_version, decision.content_hash, NOW, Governance()
        ))


def test_a_deleted_row_is_a_delete_without_payload() -> None:
    record = to_source_record(Entity.CASE, {"source_record_id": "C-9", "deleted": "true"})
    event = change_event("police-ctu", record, 5, "h", NOW, Governance())
    assert validate_event("case", event).op == "DELETE" and event["payload"] is None


def test_the_same_change_gets_the_same_event_id_and_the_key_holds_only_ids() -> None:
    record = to_source_record(Entity.CASE, ROWS[Entity.CASE])
    first = change_event("police-ctu", record, 7, "h", NOW, Governance())
    again = change_event("police-ctu", record, 7, "h", datetime.now(UTC), Governance())
    assert first["event_id"] == again["event_id"]
    assert kafka_key("police-ctu", "C-1") == b"police-ctu:C-1"


def test_event_ids_are_the_uuid5_of_what_the_event_says() -> None:
    import uuid

    from producers.events import EVENT_NAMESPACE, event_id

    for source_record_id in ("P-1", "Jos\u00e9-7", "x" * 300):
        for version in (0, 17, 2**62):
            name = f"police-ctu\x1fperson\x1f{source_record_id}\x1f{version}\x1fdigest"
            expected = str(uuid.uuid5(EVENT_NAMESPACE, name))
            assert event_id("police-ctu", "person", source_record_id, version, "digest") == expected
