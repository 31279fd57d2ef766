"""Validation of agency events: what passes, and that refusals name the field and the fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from schemas.agencies import UnknownAgencyError
from schemas.entities import ENTITIES
from schemas.examples import example_delete, example_event
from schemas.models import EVENT_MODELS, InvalidEventError, validate_event


@pytest.mark.parametrize("entity", ENTITIES)
def test_example_upsert_and_delete_of_every_entity_are_valid(entity: str) -> None:
    upsert = validate_event(entity, example_event(entity))
    assert upsert.to_record() == example_event(entity)
    delete = validate_event(entity, example_delete(entity))
    assert delete.to_record()["payload"] is None


def test_upsert_without_payload_is_refused() -> None:
    event = example_event("case")
    event["payload"] = None
    with pytest.raises(InvalidEventError, match="op UPSERT needs a payload"):
        validate_event("case", event)


def test_delete_with_payload_is_refused() -> None:
    event = example_event("case", op="DELETE")
    with pytest.raises(InvalidEventError, match="op DELETE carries no payload"):
        validate_event("case", event)


def test_error_names_the_field_path_and_the_problem() -> None:
    event = example_event("person", record="P-17")
    event["payload"]["phones"] = ["876 555 0101"]
    event["payload"]["identifiers"][0]["value"] = "12"
    with pytest.raises(InvalidEventError) as raised:
        validate_event("person", event)
    fields = [field for field, _ in raised.value.problems]
    assert "payload.phones[0]" in fields
    assert "payload.identifiers[0]" in fields
    message = str(raised.value)
    assert message.startswith("person event for record 'P-17' is invalid")
    assert "'876 555 0101' is not an E.164 phone number" in message
    assert "TRN '12' is not 9 digits" in message


def test_missing_and_unknown_fields_are_named() -> None:
    event = example_event("location")
    del event["event_time"]
    event["colour"] = "red"
    with pytest.raises(InvalidEventError) as raised:
        validate_event("location", event)
    assert dict(raised.value.problems) == {
        "event_time": "is required but missing",
        "colour": "is not a field of this record (check the spelling, or drop it)",
    }


def test_enum_error_shows_the_value_it_got() -> None:
    event = example_event("case")
    event["payload"]["status"] = "ARCHIVED"
    with pytest.raises(InvalidEventError, match=r"payload\.status: .*got 'ARCHIVED'"):
        validate_event("case", event)


def test_naive_timestamp_is_refused_and_offsets_become_utc_millis() -> None:
    event = example_event("report")
    event["event_time"] = datetime(2026, 3, 1, 10, 0)
    with pytest.raises(InvalidEventError, match="event_time: .*has no time zone"):
        validate_event("report", event)
    jamaica = timezone(timedelta(hours=-5))
    event["event_time"] = datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=jamaica)
    record = validate_event("report", event).to_record()
    assert record["event_time"] == datetime(2026, 3, 1, 15, 0, 0, 123000, tzinfo=UTC)


def test_trn_and_passport_are_normalised() -> None:
    event = example_event("person")
    event["payload"]["identifiers"] = [
        {"scheme": "TRN", "value": "100-200-300"},
        {"scheme": "PASSPORT", "value": "a 000 0001", "issuing_country": "jm"},
    ]
    identifiers = validate_event("person", event).to_record()["payload"]["identifiers"]
    assert identifiers == [
        {"scheme": "TRN", "value": "100200300", "issuing_country": None},
        {"scheme": "PASSPORT", "value": "A0000001", "issuing_country": "JM"},
    ]


def test_passport_without_issuing_country_is_refused() -> None:
    event = example_event("person")
    event["payload"]["identifiers"] = [{"scheme": "PASSPORT", "value": "A0000001"}]
    with pytest.raises(InvalidEventError, match="a passport needs its issuing_country"):
        validate_event("person", event)


def test_parish_written_as_people_write_it_becomes_the_symbol() -> None:
    event = example_event("location")
    event["payload"]["parish"] = "Saint Andrew"
    assert validate_event("location", event).to_record()["payload"]["parish"] == "ST_ANDREW"
    event["payload"]["parish"] = "Atlantis"
    with pytest.raises(InvalidEventError, match="'Atlantis' is not a parish of Jamaica"):
        validate_event("location", event)


@pytest.mark.parametrize(
    ("date_of_birth", "precision", "problem"),
    [
        ("1990-02-31", "DAY", "is not a date"),
        ("31/01/1990", "DAY", "is not a date"),
        ("1990-07-15", "YEAR", "write it as 1990-01-01"),
        ("1990-07-15", "MONTH", "write it as 1990-07-01"),
        ("1990-07-15", None, "needs dob_precision"),
    ],
)
def test_date_of_birth_must_agree_with_its_precision(
    date_of_birth: str, precision: str | None, problem: str
) -> None:
    event = example_event("person")
    event["payload"].update(date_of_birth=date_of_birth, dob_precision=precision)
    with pytest.raises(InvalidEventError, match=problem):
        validate_event("person", event)


def test_empty_cells_of_optional_fields_are_null() -> None:
    event = example_event("person")
    event["payload"]["middle_name"] = ""
    assert validate_event("person", event).to_record()["payload"]["middle_name"] is None


def test_country_codes_must_be_iso_alpha_2() -> None:
    event = example_event("person")
    event["payload"]["citizenship"] = ["Jamaica"]
    with pytest.raises(InvalidEventError, match="'Jamaica' is not an ISO 3166 alpha-2"):
        validate_event("person", event)


def test_coordinates_come_in_pairs_and_ranges() -> None:
    event = example_event("location")
    event["payload"]["longitude"] = None
    with pytest.raises(InvalidEventError, match="latitude and longitude go together"):
        validate_event("location", event)
    event["payload"].update(latitude=95.0, longitude=-76.8)
    with pytest.raises(InvalidEventError, match="payload.latitude"):
        validate_event("location", event)


def test_invalid_agency_id_is_refused_with_the_rule() -> None:
    event = example_event("case", agency_id="Police_CTU")
    with pytest.raises(InvalidEventError, match="agency_id: agency id 'Police_CTU' has upper-case"):
        validate_event("case", event)


def test_unknown_agency_is_refused_when_the_registry_is_given() -> None:
    event = example_event("case", agency_id="ghost-agency")
    assert validate_event("case", event).agency_id == "ghost-agency"
    with pytest.raises(UnknownAgencyError, match="'ghost-agency' is not in the agency registry"):
        validate_event("case", event, known_agencies={"police-ctu", "immigration"})


def test_consent_basis_needs_a_consent_reference() -> None:
    event = example_event("person", legal_basis="CONSENT")
    with pytest.raises(InvalidEventError, match="needs a consent_ref"):
        validate_event("person", event)


def test_unknown_entity_is_named() -> None:
    with pytest.raises(ValueError, match="entity 'vehicle' is not an entity type"):
        validate_event("vehicle", {})


def test_event_models_cover_every_entity() -> None:
    assert tuple(EVENT_MODELS) == ENTITIES
