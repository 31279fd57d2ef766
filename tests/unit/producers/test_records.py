from __future__ import annotations

import pytest

from producers.canonical import Entity
from producers.records import CASE_LINK_SUFFIX, RowError, to_source_record


def person_row(**overrides: str) -> dict[str, str]:
    row = {
        "source_record_id": "P-1", "given_name": "Ann", "middle_name": "", "family_name": "Brown",
        "aliases": "Annie; ", "date_of_birth": "1990-05", "sex": "F", "citizenship": "JM",
        "trn": "123456789", "nin": "", "passport_number": "a1234567", "passport_country": "JM",
        "phone": "876-555-1234;876 555 1234", "email": "ann@EXAMPLE.org", "address": "1 Main St",
        "parish": "Saint Ann", "role": "", "case_ref": "", "updated_at": "2024-05-01T10:00:00Z",
        "deleted": "",
    }
    row.update(overrides)
    return row


def test_a_person_row_becomes_a_normalised_payload() -> None:
    record = to_source_record(Entity.PERSON, person_row())
    assert record.source_record_id == "P-1"
    assert record.payload["date_of_birth"] == "1990-05-01"
    assert record.payload["dob_precision"] == "MONTH"
    assert record.payload["sex"] == "FEMALE"
    assert record.payload["phones"] == ["+18765551234"]  # the same number twice is kept once
    assert record.payload["emails"] == ["ann@example.org"]
    assert record.payload["aliases"] == ["Annie"]
    address = {"line": "1 Main St", "parish": "ST_ANN", "country": "JM"}
    assert record.payload["addresses"] == [address]
    assert {"scheme": "PASSPORT", "value": "A1234567", "issuing_country": "JM"} in record.payload[
        "identifiers"
    ]
    assert record.derived == ()


def test_role_and_case_ref_yield_a_link_to_the_case() -> None:
    record = to_source_record(Entity.PERSON, person_row(role="victim", case_ref="CTU-2024-7"))
    (link,) = record.derived
    assert link.entity is Entity.LINK
    assert link.source_record_id == "P-1" + CASE_LINK_SUFFIX
    assert link.payload["link_role"] == "VICTIM"
    assert link.payload["to_record_id"] == "CTU-2024-7"


def test_every_problem_of_a_row_is_reported_at_once() -> None:
    with pytest.raises(RowError) as raised:
        to_source_record(Entity.PERSON, person_row(date_of_birth="31/02/1990", sex="Q", trn="1"))
    message = str(raised.value)
    assert "date_of_birth" in message and "sex" in message and "trn" in message


def test_a_missing_source_record_id_is_refused() -> None:
    with pytest.raises(RowError, match="source_record_id is empty"):
        to_source_record(Entity.PERSON, person_row(source_record_id=" "))


def test_an_oversized_field_is_refused_before_normalising() -> None:
    with pytest.raises(RowError, match="characters long"):
        to_source_record(Entity.PERSON, person_row(given_name="A" * 5000))


def test_a_case_row_with_forms_of_exploitation() -> None:
    record = to_source_record(
        Entity.CASE,
        {"source_record_id": "C-1", "case_ref": "CTU-1", "status": "open",
         "forms_of_exploitation": "sexual;labor", "opened_on": "2024-01-02", "parish": "KGN"},
    )
    assert record.payload["forms_of_exploitation"] == ["SEXUAL", "LABOUR"]
    assert record.payload["parish"] == "KINGSTON"


def test_a_link_needs_both_ends_unless_deleted() -> None:
    with pytest.raises(RowError, match="to_record_id is empty"):
        to_source_record(
            Entity.LINK,
            {"source_record_id": "L-1", "from_entity": "person", "from_record_id": "P-1",
             "to_entity": "case", "link_role": "VICTIM"},
        )
    deleted = to_source_record(Entity.LINK, {"source_record_id": "L-1", "deleted": "true"})
    assert deleted.deleted


def test_a_record_id_is_published_in_its_cleaned_spelling() -> None:
    assert to_source_record(Entity.PERSON, person_row(source_record_id=" A\u00a0 2 ")) \
        .source_record_id == "A 2"


def test_a_record_id_with_a_nul_is_refused_with_the_rows_other_problems() -> None:
    with pytest.raises(RowError) as raised:
        to_source_record(Entity.PERSON, person_row(source_record_id="P\x001", sex="Q"))
    message = str(raised.value)
    assert "source_record_id" in message and "holds a control" in message
    assert "sex" in message and "empty" not in message


def test_a_link_end_with_a_control_character_is_refused() -> None:
    row = {"source_record_id": "L-1", "from_entity": "person", "from_record_id": "P\x1f1",
           "to_entity": "case", "to_record_id": "C  1", "link_role": "victim"}
    with pytest.raises(RowError, match="from_record_id holds a control"):
        to_source_record(Entity.LINK, row)
    row["from_record_id"] = "P 1"
    assert to_source_record(Entity.LINK, row).payload["to_record_id"] == "C 1"


def test_a_date_of_birth_in_the_future_is_an_invalid_date_of_birth() -> None:
    with pytest.raises(RowError, match="date_of_birth is in the future"):
        to_source_record(Entity.PERSON, person_row(date_of_birth="2199-01-01"))
