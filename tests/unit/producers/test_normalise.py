from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from producers import normalise
from producers.canonical import SEX
from producers.normalise import DatePrecision, FieldError


def test_names_are_nfc_with_single_spaces_and_keep_their_case() -> None:
    decomposed = "Jose\u0301  McDonald\t"
    assert normalise.name("given_name", decomposed) == "Jos\u00e9 McDonald"


def test_a_name_without_letters_is_refused_with_the_fix() -> None:
    with pytest.raises(FieldError, match="has no letters"):
        normalise.name("family_name", "1234")


@pytest.mark.parametrize(
    ("raw", "e164"),
    [("876-555-1234", "+18765551234"), ("(876) 927 1234", "+18769271234"),
     ("+44 20 7946 0958", "+442079460958")],
)
def test_phones_become_e164_with_jamaica_as_the_default_region(raw: str, e164: str) -> None:
    assert normalise.phone("phone", raw) == e164


def test_a_phone_that_is_not_a_number_names_the_value() -> None:
    with pytest.raises(FieldError, match="'call me'"):
        normalise.phone("phone", "call me")


@pytest.mark.parametrize(
    ("raw", "iso", "precision"),
    [("1990-05-17", "1990-05-17", DatePrecision.DAY),
     ("1990-05", "1990-05-01", DatePrecision.MONTH),
     ("1990", "1990-01-01", DatePrecision.YEAR)],
)
def test_dates_keep_their_precision(raw: str, iso: str, precision: DatePrecision) -> None:
    parsed = normalise.partial_date("date_of_birth", raw)
    assert (parsed.iso, parsed.precision) == (iso, precision)


def test_an_impossible_date_is_refused_with_the_expected_format() -> None:
    with pytest.raises(FieldError, match="expected YYYY-MM-DD"):
        normalise.partial_date("date_of_birth", "1990-02-31")


def test_mapping_date_formats_set_the_precision_from_their_directives() -> None:
    day = normalise.partial_date("date_of_birth", "17/05/1990", ["%d/%m/%Y", "%Y"])
    year = normalise.partial_date("date_of_birth", "1990", ["%d/%m/%Y", "%Y"])
    assert (day.iso, day.precision) == ("1990-05-17", DatePrecision.DAY)
    assert (year.iso, year.precision) == ("1990-01-01", DatePrecision.YEAR)


def test_timestamps_without_offset_are_jamaica_time() -> None:
    assert normalise.timestamp("updated_at", "2024-05-01 09:00") == datetime(
        2024, 5, 1, 14, 0, tzinfo=UTC
    )
    assert normalise.timestamp("updated_at", "2024-05-01T09:00:00Z") == datetime(
        2024, 5, 1, 9, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "spelling", ["St Andrew", "Saint Andrew", "st. andrew", "ST.ANDREW", "Parish of St Andrew"]
)
def test_parish_spellings_become_the_canonical_name(spelling: str) -> None:
    assert normalise.parish_name("parish", spelling) == "St. Andrew"
    assert normalise.parish("parish", spelling) == "ST_ANDREW"


def test_ksa_is_refused_because_it_names_two_parishes() -> None:
    with pytest.raises(FieldError, match="two parishes"):
        normalise.parish("parish", "KSA")


def test_an_unknown_parish_lists_the_fourteen() -> None:
    with pytest.raises(FieldError, match="Westmoreland"):
        normalise.parish("parish", "Atlantis")


def test_trn_keeps_nine_digits_and_passport_is_upper_case() -> None:
    assert normalise.trn("trn", "123-456 789") == "123456789"
    assert normalise.passport_number("passport_number", "ab 123456") == "AB123456"
    with pytest.raises(FieldError, match="9 digits"):
        normalise.trn("trn", "12345")


def test_sex_codes_and_words_are_accepted() -> None:
    assert normalise.choice("sex", "f", SEX) == "FEMALE"
    assert normalise.choice("sex", "Unknown", SEX) == "UNKNOWN"
    with pytest.raises(FieldError, match="codes.sex"):
        normalise.choice("sex", "5", SEX)


def test_country_codes_are_iso_alpha_2() -> None:
    assert normalise.country("citizenship", "jm") == "JM"
    with pytest.raises(FieldError, match="two-letter"):
        normalise.country("citizenship", "JAM")


def test_clean_text_takes_its_shortcut_only_where_the_result_is_the_same() -> None:
    """Printable ASCII skips NFC and the control-character scan; every other text takes the
    full path. Every ASCII character, alone and between others, gives the full path's result."""
    import re
    import unicodedata

    def full_path(value: str) -> str:
        composed = "".join(
            " " if unicodedata.category(char) in {"Cc", "Cf"} else char
            for char in unicodedata.normalize("NFC", value)
        )
        return re.sub(r"\s+", " ", composed).strip()

    for code in range(128):
        for value in (chr(code), f" a{chr(code)}{chr(code)}b ", f"{chr(code)} x  y"):
            assert normalise.clean_text(value) == full_path(value), repr(value)
    assert normalise.clean_text("Ann\u00a0Marie\u200b ") == "Ann Marie"


def test_e_mail_addresses_are_lower_case_as_the_contract_writes_them() -> None:
    assert normalise.email("email", " Ann.Brown@EXAMPLE.org ") == "ann.brown@example.org"


@pytest.mark.parametrize("value", ["1879-12-31", "1879", "2201-01-01"])
def test_an_implausible_year_is_refused(value: str) -> None:
    with pytest.raises(FieldError, match="not a plausible date"):
        normalise.partial_date("date_of_birth", value)


def test_mapping_formats_are_held_to_the_same_years() -> None:
    with pytest.raises(FieldError, match="not a plausible date"):
        normalise.partial_date("date_of_birth", "01/01/1066", ["%d/%m/%Y"])


def test_the_shortcuts_for_north_american_numbers_give_the_phone_librarys_answer() -> None:
    """Numbers shaped like 876-555-1234 skip the library's parser, and a number valid for the
    default region skips the search over all regions of +1; on thousands of generated numbers,
    written in many ways and read for three regions, the answer is the library's own."""
    import random

    import phonenumbers

    def library(value: str, region: str) -> str | None:
        try:
            parsed = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(parsed):
            return None
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    def ours(value: str, region: str) -> str | None:
        try:
            return normalise.phone("phone", value, region)
        except FieldError:
            return None

    rng = random.Random(1)
    separators = ["", " ", "-", ".", "  ", "/"]
    prefixes = ["", "1", "+1", "+1 ", "1-", "+", "+44 ", "0", "(", "1 ("]
    valid = 0
    for _ in range(1_500):
        digits = f"{rng.randint(0, 9_999_999_999):010d}"
        if rng.random() < 0.6:
            digits = rng.choice(["876", "658", "212", "441", "800"]) + digits[3:]
        prefix = rng.choice(prefixes)
        area = digits[:3] + (")" if prefix.endswith("(") else "")
        written = (
            f"{prefix}{area}{rng.choice(separators)}{digits[3:6]}{rng.choice(separators)}"
            f"{digits[6:]}{rng.choice(['', ' ', ' x12'])}"
        )
        for region in ("JM", "US", "GB"):
            expected = library(written, region)
            assert ours(written, region) == expected, (written, region)
            valid += expected is not None
    assert valid > 500  # the sample holds valid numbers, not only refusals


def test_memoised_parsers_still_refuse_a_bad_value_every_time() -> None:
    for _ in range(2):
        with pytest.raises(FieldError, match="not a valid phone number"):
            normalise.phone("phone", "876-000-0000")
        with pytest.raises(FieldError, match="two parishes"):
            normalise.parish("parish", "KSA")


@pytest.mark.parametrize(
    "raw", ["A 2", "A  2", " A 2 ", "A\u00a02", "A\t2", "A\u20032", "A 2\r\n"]
)
def test_record_ids_that_differ_only_in_spaces_are_one_id(raw: str) -> None:
    assert normalise.record_id("source_record_id", raw) == "A 2"


def test_a_record_id_is_nfc_like_any_text() -> None:
    assert normalise.record_id("source_record_id", "Jose\u0301-1") == "Jos\u00e9-1"


@pytest.mark.parametrize("raw", ["A\x002", "A\x1b2", "\x7fA2", "A\u200b2", "\ufeffA2", "A\x0b2"])
def test_a_record_id_with_a_control_character_is_refused(raw: str) -> None:
    with pytest.raises(FieldError, match="control") as raised:
        normalise.record_id("source_record_id", raw)
    assert "A2" not in str(raised.value) and "A\x002" not in str(raised.value)


def test_a_date_of_birth_after_today_is_refused_without_quoting_it() -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date()
    for value, formats in [
        (tomorrow.isoformat(), None),
        (f"{tomorrow.year + 1}", None),
        (tomorrow.strftime("%d/%m/%Y"), ["%d/%m/%Y"]),
    ]:
        with pytest.raises(FieldError, match="in the future") as raised:
            normalise.partial_date("date_of_birth", value, formats)
        assert value not in str(raised.value)


def test_a_date_of_birth_this_year_or_month_or_today_is_accepted() -> None:
    today = datetime.now(UTC).date()
    assert normalise.partial_date("date_of_birth", today.isoformat()).value == today
    assert normalise.partial_date("date_of_birth", today.strftime("%Y-%m")).value.month == (
        today.month
    )
    assert normalise.partial_date("date_of_birth", str(today.year)).value.year == today.year


def test_other_dates_may_be_in_the_future() -> None:
    assert normalise.partial_date("valid_to", "2199-01-01").value.year == 2199
