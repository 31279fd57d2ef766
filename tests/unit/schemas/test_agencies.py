"""The agency registry: the shipped task force, and friendly refusals of bad entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.agencies import (
    FIELD_GROUPS,
    AgencyRegistryError,
    InvalidAgencyIdError,
    load_agencies,
    parse_agencies,
    validate_agency_id,
)

CONTRACT_AGENCIES = {
    "police-ctu",
    "immigration",
    "passport-office",
    "child-protection",
    "labour-ministry",
    "victim-services",
    "prosecutions",
    "customs",
    "health-ministry",
    "safe-haven-shelter",
    "hope-line-ngo",
    "migrant-aid-ngo",
}


def test_shipped_registry_holds_the_agreed_task_force() -> None:
    agencies = load_agencies()
    assert set(agencies) == CONTRACT_AGENCIES
    assert {agency.kind for agency in agencies.values()} == {"government", "ngo"}
    for agency in agencies.values():
        assert set(agency.trust) == set(FIELD_GROUPS)
    assert agencies["passport-office"].trust["identifiers"] == 10
    assert agencies["passport-office"].trust["case"] == 6  # from its default


def test_environment_variable_points_at_another_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "agencies.yaml"
    path.write_text(
        "agencies:\n  - {id: test-unit, name: Test Unit, kind: government, trust: {default: 5}}\n"
    )
    monkeypatch.setenv("TIPSYNC_AGENCIES", str(path))
    assert list(load_agencies()) == ["test-unit"]


@pytest.mark.parametrize(
    ("agency_id", "problem"),
    [
        ("", "is empty"),
        ("Police", "has upper-case letters"),
        ("police_ctu", "has characters other than"),
        ("-police", "starts or ends with '-'"),
        ("p" * 41, "is 41 characters long"),
    ],
)
def test_invalid_agency_ids_say_what_is_wrong(agency_id: str, problem: str) -> None:
    with pytest.raises(InvalidAgencyIdError, match=problem):
        validate_agency_id(agency_id)


def test_valid_agency_id_is_returned() -> None:
    assert validate_agency_id("hope-line-ngo") == "hope-line-ngo"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"id": "a", "name": "A", "kind": "club", "trust": {"default": 5}}, "kind 'club'"),
        ({"id": "a", "name": "A", "kind": "ngo", "trust": {"names": 5}}, "'default' rank"),
        ({"id": "a", "name": "A", "kind": "ngo", "trust": {"default": 11}}, "from 1 .* to 10"),
        ({"id": "a", "name": "A", "kind": "ngo", "trust": {"default": 5, "shoe": 1}}, "shoe"),
        ({"id": "A", "name": "A", "kind": "ngo", "trust": {"default": 5}}, "upper-case"),
        ({"id": "a", "kind": "ngo", "trust": {"default": 5}}, "has no name"),
    ],
)
def test_bad_entries_are_refused_naming_the_agency(entry: dict, problem: str) -> None:
    with pytest.raises(AgencyRegistryError, match=problem):
        parse_agencies({"agencies": [entry]}, "test.yaml")


def test_duplicate_ids_are_refused() -> None:
    entry = {"id": "a", "name": "A", "kind": "ngo", "trust": {"default": 5}}
    with pytest.raises(AgencyRegistryError, match="listed twice"):
        parse_agencies({"agencies": [entry, entry]})


def test_missing_file_names_the_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(AgencyRegistryError, match="cannot be read.*TIPSYNC_AGENCIES"):
        load_agencies(tmp_path / "absent.yaml")
