from __future__ import annotations

from pathlib import Path

import pytest

from producers.mapping import MappingError, Split, SplitStyle, load_mapping, split_name

CHILD_PROTECTION = """
agency: child-protection
entity: person
format: csv
delimiter: ";"
encoding: cp1252
columns:
  source_record_id: ChildRef
  date_of_birth: DOB
  sex: Gender
  deleted: Removed
split:
  FullName: {into: [family_name, given_name, middle_name], style: family_comma_given}
dates:
  date_of_birth: ["%d/%m/%Y", "%Y"]
codes:
  sex: {1: FEMALE, 2: MALE, 9: UNKNOWN}
  deleted: {Y: true, N: false}
constants:
  citizenship: JM
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    return path


def test_a_mapping_translates_an_agency_row_to_canonical_columns(tmp_path: Path) -> None:
    mapping = load_mapping(write(tmp_path, CHILD_PROTECTION))
    row = {"ChildRef": "CP-9", "DOB": "17/05/2010", "Gender": "1", "Removed": "N",
           "FullName": "Brown, Ann Marie", "Ignored": "x"}
    assert mapping.translate(row) == {
        "source_record_id": "CP-9", "date_of_birth": "17/05/2010", "sex": "FEMALE",
        "deleted": "false", "family_name": "Brown", "given_name": "Ann", "middle_name": "Marie",
        "citizenship": "JM",
    }
    assert mapping.missing_columns(["ChildRef", "DOB"]) == ["Gender", "Removed", "FullName"]


def test_a_misspelt_canonical_column_is_named_with_a_suggestion(tmp_path: Path) -> None:
    text = CHILD_PROTECTION.replace("date_of_birth: DOB", "date_of_brith: DOB")
    with pytest.raises(MappingError, match=r"columns.date_of_brith.*did you mean date_of_birth"):
        load_mapping(write(tmp_path, text))


def test_an_unknown_key_and_a_bad_style_are_named(tmp_path: Path) -> None:
    text = CHILD_PROTECTION.replace("style: family_comma_given", "style: reversed") + "colums: {}\n"
    with pytest.raises(MappingError) as raised:
        load_mapping(write(tmp_path, text))
    assert "split.FullName.style" in str(raised.value)
    assert "colums: is not a mapping key" in str(raised.value)


def test_a_mapping_without_the_id_column_is_invalid(tmp_path: Path) -> None:
    text = CHILD_PROTECTION.replace("source_record_id: ChildRef", "trn: TRN")
    with pytest.raises(MappingError, match="columns.source_record_id is missing"):
        load_mapping(write(tmp_path, text))


def test_given_family_split_puts_inner_tokens_in_the_middle_name() -> None:
    split = Split(into=["given_name", "middle_name", "family_name"], style=SplitStyle.GIVEN_FAMILY)
    assert split_name("Ann  Marie Brown", split) == {
        "given_name": "Ann", "middle_name": "Marie", "family_name": "Brown"
    }
    two = Split(into=["given_name", "family_name"], style=SplitStyle.GIVEN_FAMILY)
    assert split_name("Ann Marie Brown", two) == {"given_name": "Ann Marie", "family_name": "Brown"}


def test_on_invalid_sets_the_policy_per_column_keep_by_default(tmp_path: Path) -> None:
    from producers.canonical import Entity, OnInvalid

    mapping = load_mapping(write(tmp_path, CHILD_PROTECTION + "on_invalid:\n  sex: reject\n"))
    policy = mapping.invalid_value_policy
    assert mapping.on_invalid == {"sex": OnInvalid.REJECT}
    assert not policy.keeps(Entity.PERSON, "sex")
    assert policy.keeps(Entity.PERSON, "date_of_birth")
    assert not policy.keeps(Entity.PERSON, "source_record_id")  # identifies the record
    strict = load_mapping(write(tmp_path, CHILD_PROTECTION + "on_invalid: {default: reject}\n"))
    assert not strict.invalid_value_policy.keeps(Entity.PERSON, "date_of_birth")


def test_on_invalid_refuses_unknown_columns_policies_and_keeping_an_id(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="on_invalid.phone: Input should be 'keep' or 'reject'"):
        load_mapping(write(tmp_path, CHILD_PROTECTION + "on_invalid:\n  phone: drop\n"))
    text = CHILD_PROTECTION + "on_invalid:\n  date_of_brith: keep\n  source_record_id: keep\n"
    with pytest.raises(MappingError) as raised:
        load_mapping(write(tmp_path, text))
    message = str(raised.value)
    assert "on_invalid.date_of_brith" in message and "did you mean date_of_birth" in message
    assert "on_invalid.source_record_id: source_record_id cannot be kept" in message
