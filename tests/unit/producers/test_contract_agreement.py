"""The producer's normalisation and the contract's model agree, so the model can run once per
run instead of once per event (producers/encoding.py).

Two promises are pinned here: every record the producer accepts is accepted by the contract
and encodes to exactly the bytes the contract's own model would write; and every value the
contract refuses is refused by the producer first, with a message for the agency.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from typing import Any

import fastavro
import phonenumbers
import pytest

from deploy.bench.synthetic import person_rows
from producers.canonical import (
    CODED_COLUMNS,
    LIST_COLUMNS,
    Entity,
    InvalidValuePolicy,
    OnInvalid,
    always_rejects,
)
from producers.encoding import EncodingSetupError, check_run_envelope
from producers.events import Governance, change_event
from producers.records import NormalisedRecord, RowError, to_source_record
from producers.versions import decide
from schemas.catalogue import governed_schema
from schemas.models import InvalidEventError, validate_event

NOW = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
GOVERNANCE = Governance(retention_days=3650)

ROWS: list[tuple[Entity, dict[str, str]]] = [
    (Entity.PERSON, {
        "source_record_id": "P-1", "given_name": " Ann ", "middle_name": "Marie  Joy",
        "family_name": "McDonald", "aliases": "Annie;annie; Big A", "date_of_birth": "1990",
        "sex": "f", "citizenship": "jm;US;JM", "trn": "123-456-789", "nin": "ab 12345",
        "passport_number": "a1234567", "passport_country": "jm",
        "phone": "876-555-1234;+44 20 7946 0958", "email": "Ann.Brown@EXAMPLE.org",
        "address": "1  Main St", "parish": "Saint Andrew", "role": "victim", "case_ref": "CTU-1",
        "updated_at": "2024-05-01 10:00",
    }),
    (Entity.PERSON, {
        "source_record_id": "P-2", "given_name": "Jos\u0065\u0301", "family_name": "Brown",
        "date_of_birth": "1880-02", "sex": "U", "updated_at": "2024-05-01T10:00:00.123456Z",
        "source_version": "9223372036854775807",
    }),
    (Entity.PERSON, {"source_record_id": "P-3", "parish": "Mo Bay"}),
    (Entity.CASE, {
        "source_record_id": "C-1", "case_ref": "CTU-1", "title": "Farm", "status": "under "
        "investigation", "opened_on": "2024-01-02", "closed_on": "2024-01-02",
        "forms_of_exploitation": "SEXUAL;labor;LABOUR", "parish": "KGN", "summary": "Line\tone",
    }),
    (Entity.REPORT, {
        "source_record_id": "R-1", "channel": "walk-in", "received_at": "2024-01-02T08:00:00-05:00",
        "narrative": "A tip.", "parish": "St James", "case_ref": "CTU-1",
    }),
    (Entity.ORGANISATION, {
        "source_record_id": "O-1", "name": "Blue Mountain Farms Ltd", "aliases": "BMF",
        "registration_number": "12345", "org_type": "company", "industry": "Agriculture",
        "address": "Mavis Bank", "parish": "St. Andrew", "phone": "876 927 1234",
        "email": "info@BMF.example.org",
    }),
    (Entity.LOCATION, {
        "source_record_id": "L-1", "name": "Farm", "parish": "Portland", "latitude": "0.00001",
        "longitude": "-76.4", "location_role": "exploitation",
    }),
    (Entity.LINK, {
        "source_record_id": "K-1", "from_entity": "person", "from_record_id": "P-1",
        "to_entity": "organisation", "to_record_id": "O-1", "link_role": "employer",
        "valid_from": "2023-01-01", "valid_to": "2023-01-01",
    }),
    (Entity.CASE, {"source_record_id": "C-9", "deleted": "yes"}),
]


def _avro(entity: str, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, governed_schema(entity).parsed, record)
    return buffer.getvalue()


def _events(record: NormalisedRecord) -> list[tuple[str, dict[str, Any]]]:
    decision = decide(record, None, 0)
    return [
        (item.entity.value, change_event(
            "police-ctu", item, decision.source_version, decision.content_hash, NOW, GOVERNANCE
        ))
        for item in (record, *record.derived)
    ]


def assert_contract_agrees(record: NormalisedRecord) -> None:
    for entity, event in _events(record):
        model = validate_event(entity, event)
        assert _avro(entity, event) == _avro(entity, model.to_record()), event


@pytest.mark.parametrize(("entity", "row"), ROWS, ids=[row["source_record_id"] for _, row in ROWS])
def test_what_the_producer_builds_is_what_the_contract_would_write(
    entity: Entity, row: dict[str, str]
) -> None:
    assert_contract_agrees(to_source_record(entity, row))


def test_synthetic_exports_agree_with_the_contract_row_by_row() -> None:
    for row in person_rows(300, seed=11):
        assert_contract_agrees(to_source_record(Entity.PERSON, row))


@pytest.mark.parametrize(
    "region", sorted(phonenumbers.SUPPORTED_REGIONS), ids=lambda region: region
)
def test_every_phone_the_producer_accepts_is_an_e164_number_of_the_contract(region: str) -> None:
    numbers = [
        phonenumbers.example_number_for_type(region, kind)
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE)
    ]
    written = [
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        for number in numbers
        if number is not None
    ]
    if not written:
        pytest.skip(f"the phone library has no example number for {region}")
    record = to_source_record(
        Entity.PERSON, {"source_record_id": "P-1", "phone": ";".join(written)}
    )
    assert record.payload["phones"]
    assert_contract_agrees(record)


@pytest.mark.parametrize(("entity", "column"), sorted(CODED_COLUMNS))
def test_every_code_the_producer_accepts_is_a_symbol_of_the_contract(
    entity: Entity, column: str
) -> None:
    base = {
        Entity.PERSON: {"role": "VICTIM", "case_ref": "CTU-1"},
        Entity.CASE: {"case_ref": "CTU-1"},
        Entity.ORGANISATION: {"name": "Farm"},
        Entity.LINK: {
            "from_entity": "PERSON", "from_record_id": "P-1", "to_entity": "CASE",
            "to_record_id": "C-1", "link_role": "VICTIM",
        },
    }.get(entity, {})
    for value in CODED_COLUMNS[(entity, column)].values:
        row = {"source_record_id": "X-1", **base, column: value}
        record = to_source_record(entity, row)
        assert_contract_agrees(record)
        if column in LIST_COLUMNS:
            assert record.payload[column] == [value]


REFUSED_BY_BOTH: list[tuple[Entity, dict[str, str], str]] = [
    (Entity.PERSON, {"date_of_birth": "1879-12-31"}, "date_of_birth '1879-12-31' is not a "
     "plausible date"),
    (Entity.PERSON, {"updated_at": "1969-12-31T23:59:59Z"}, "updated_at '1969-12-31T23:59:59Z' "
     "is before 1970"),
    (Entity.PERSON, {"source_version": "9223372036854775808"}, "source_version "
     "'9223372036854775808' is not a whole number between 0 and"),
    (Entity.PERSON, {"passport_number": "A1234567"}, "passport_country is empty"),
    (Entity.PERSON, {"email": "ann@example"}, "email 'ann@example' is not an e-mail address"),
    (Entity.PERSON, {"citizenship": "XX"}, "citizenship 'XX' is not an ISO 3166"),
    (Entity.PERSON, {"trn": "12345678"}, "trn '12345678' is not a TRN"),
    (Entity.CASE, {"case_ref": "C", "opened_on": "2024-02-01", "closed_on": "2024-01-31"},
     "closed_on 2024-01-31 is before opened_on 2024-02-01"),
    (Entity.CASE, {"case_ref": "\x00"}, "case_ref is empty"),
    (Entity.ORGANISATION, {"name": " "}, "name is empty"),
    (Entity.LOCATION, {"latitude": "91", "longitude": "0"}, "latitude '91' is not a decimal"),
    (Entity.LOCATION, {"latitude": "18"}, "latitude and longitude must be given together"),
    (Entity.LINK, {"from_entity": "link", "from_record_id": "K-1", "to_entity": "case",
                   "to_record_id": "C-1", "link_role": "other"}, "from_entity 'link' is not a "
     "known code"),
    (Entity.LINK, {"from_entity": "person", "from_record_id": "\x01", "to_entity": "case",
                   "to_record_id": "C-1", "link_role": "victim"}, "from_record_id holds a control"),
    (Entity.LINK, {"from_entity": "person", "from_record_id": "P-1", "to_entity": "case",
                   "to_record_id": "C-1", "link_role": "victim", "valid_from": "2024-02-01",
                   "valid_to": "2024-01-31"}, "valid_to 2024-01-31 is before valid_from"),
]


STRICT = InvalidValuePolicy(default=OnInvalid.REJECT)


@pytest.mark.parametrize(("entity", "values", "reason"), REFUSED_BY_BOTH)
def test_what_the_contract_refuses_the_producer_refuses_first_with_the_reason(
    entity: Entity, values: dict[str, str], reason: str
) -> None:
    with pytest.raises(RowError) as raised:
        to_source_record(entity, {"source_record_id": "X-1", **values}, on_invalid=STRICT)
    assert reason in str(raised.value)


@pytest.mark.parametrize(("entity", "values", "reason"), REFUSED_BY_BOTH)
def test_under_the_keep_policy_what_the_contract_refuses_is_left_out_and_flagged(
    entity: Entity, values: dict[str, str], reason: str
) -> None:
    """The same values under the default policy: the record is published without the value
    the contract refuses (what is published still agrees with the contract), and the value is
    flagged; a column that identifies the record (or the change) still rejects the row."""
    row = {"source_record_id": "X-1", **values}
    if always_rejects(entity, reason.split()[0]):  # each reason starts with its column
        with pytest.raises(RowError, match=re.escape(reason)):
            to_source_record(entity, row)
        return
    record = to_source_record(entity, row)
    assert record.quality_issues, "the value left out is flagged"
    flagged = {column for column, _ in record.quality_issues}
    assert flagged <= set(values), flagged
    assert_contract_agrees(record)


def test_the_boundaries_the_producer_keeps_are_the_contracts() -> None:
    """The refusals above are not stricter than the contract where it draws a line itself."""
    earliest = to_source_record(
        Entity.PERSON, {"source_record_id": "P-1", "date_of_birth": "1880-01-01"}
    )
    assert_contract_agrees(earliest)
    payload = dict(earliest.payload, date_of_birth="1879-12-31")
    event = change_event(
        "police-ctu", NormalisedRecord(Entity.PERSON, "P-1", False, None, None, payload), 1, "h",
        NOW, GOVERNANCE,
    )
    with pytest.raises(InvalidEventError, match="before 1880"):
        validate_event("person", event)


@pytest.mark.parametrize(
    ("agency", "governance", "reason"),
    [
        ("Police CTU", Governance(), "agency_id"),
        ("police-ctu", Governance(classification="SECRET"), "classification"),
        ("police-ctu", Governance(legal_basis="CONSENT"), "consent_ref"),
    ],
)
def test_the_envelope_a_run_shares_is_checked_once_against_the_contract(
    agency: str, governance: Governance, reason: str
) -> None:
    with pytest.raises(EncodingSetupError, match=reason) as raised:
        check_run_envelope(agency, governance, [Entity.PERSON, Entity.LINK])
    assert "--classification" in str(raised.value)


def test_a_run_with_a_valid_envelope_passes_the_check() -> None:
    check_run_envelope(
        "police-ctu", Governance(legal_basis="CONSENT", consent_ref="form-17"), list(Entity)
    )
