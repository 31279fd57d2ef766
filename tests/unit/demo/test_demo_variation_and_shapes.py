"""The pieces of the generator: variations, name lists, export shapes."""

from __future__ import annotations

import random
from datetime import date, datetime

import jellyfish
import phonenumbers
import pytest

from deploy.demo import names, variation
from deploy.demo.generate import impossible_date, unknown_sex_code
from deploy.demo.shapes import JAMAICA_TIME, PartialDate, load_shape
from deploy.demo.world import AGENCIES, PHONE_EXCHANGES, PROFILES


def all_names(table: dict[str, tuple[str, ...]]) -> list[str]:
    return [name for pool in table.values() for name in pool]


def test_name_lists_are_long_single_words_that_cp1252_can_hold() -> None:
    given = all_names(names.FEMALE_GIVEN) + all_names(names.MALE_GIVEN)
    family = all_names(names.FAMILY)
    assert len(set(given)) >= 150 and len(set(family)) >= 150
    for name in given + family:
        assert " " not in name and "," not in name
        name.encode("cp1252")


def test_a_typo_is_one_edit_away() -> None:
    rng = random.Random(4)
    for word in ("Campbell", "Patricia", "Ménard", "Lee", "Anne"):
        for _ in range(50):
            changed = variation.typo(rng, word)
            assert jellyfish.damerau_levenshtein_distance(word, changed) <= 1
            assert changed[0] == word[0]


def test_swapping_day_and_month_only_when_both_could_be_a_month() -> None:
    assert variation.swap_day_and_month(date(1990, 3, 7)) == date(1990, 7, 3)
    assert variation.swap_day_and_month(date(1990, 3, 25)) == date(1990, 3, 25)


def test_a_mistyped_identifier_differs_in_one_place_or_one_swap() -> None:
    rng = random.Random(2)
    for _ in range(100):
        changed = variation.mistype_digits(rng, "123456789")
        assert changed != "123456789" and len(changed) == 9
        assert jellyfish.damerau_levenshtein_distance("123456789", changed) == 1


@pytest.mark.parametrize("style", variation.PHONE_STYLES)
def test_every_phone_layout_is_the_same_valid_jamaican_number(style: str) -> None:
    for exchange in PHONE_EXCHANGES:
        number = f"876{exchange}4321"
        parsed = phonenumbers.parse(variation.format_phone(number, style), "JM")
        assert phonenumbers.is_valid_number(parsed), (exchange, style)
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == (
            f"+1{number}"
        )


def test_every_agency_entity_has_a_shape_and_the_shapes_differ() -> None:
    shapes = [load_shape(agency, entity) for agency in AGENCIES
              for entity in PROFILES[agency].entities]
    person_headers = {shape.header for shape in shapes if shape.entity == "person"}
    assert len(person_headers) >= 10
    assert {shape.delimiter for shape in shapes} >= {",", ";", "|", "\t"}
    assert {shape.encoding for shape in shapes} >= {"utf-8", "cp1252"}
    assert {shape.format for shape in shapes} == {"csv", "jsonl"}
    assert any(shape.mapping is None for shape in shapes)


def test_a_birth_date_is_written_no_more_precisely_than_it_is_known() -> None:
    shape = load_shape("child-protection", "person")  # formats %d/%m/%Y, then %Y
    row = {"source_record_id": "CP-1", "given_name": "Ann", "middle_name": "Marie",
           "family_name": "Brown", "sex": "FEMALE",
           "updated_at": datetime(2024, 5, 1, 14, 30, tzinfo=JAMAICA_TIME)}
    cells = dict(zip(shape.header, shape.render(
        {**row, "date_of_birth": PartialDate(date(1990, 3, 5), "DAY")}), strict=True))
    assert cells["DOB"] == "05/03/1990"
    assert cells["FullName"] == "Brown, Ann Marie"
    assert cells["Sex"] == "1"
    assert cells["LastModified"] == "01/05/2024 14:30"
    year_only = dict(zip(shape.header, shape.render(
        {**row, "date_of_birth": PartialDate(date(1990, 1, 1), "YEAR")}), strict=True))
    assert year_only["DOB"] == "1990"
    month_only = dict(zip(shape.header, shape.render(
        {**row, "date_of_birth": PartialDate(date(1990, 3, 1), "MONTH")}), strict=True))
    assert month_only["DOB"] == "1990"  # no month format: the agency keeps the year


@pytest.mark.parametrize(
    "formats", [["%d/%m/%Y", "%Y"], ["%Y%m%d"], ["%d %B %Y"], ["%d-%b-%Y"], ["%Y"], []]
)
def test_the_planted_date_matches_none_of_the_agency_formats(formats: list[str]) -> None:
    text = impossible_date(formats)
    for date_format in formats or ["%Y-%m-%d", "%Y-%m", "%Y"]:
        with pytest.raises(ValueError):
            datetime.strptime(text, date_format)


def test_the_planted_sex_code_is_unknown_to_every_agency() -> None:
    for agency in AGENCIES:
        shape = load_shape(agency, "person")
        code = unknown_sex_code(shape)
        assert code not in shape.codes("sex")
        assert code.upper() not in {"F", "M", "X", "U", "FEMALE", "MALE", "OTHER", "UNKNOWN"}
