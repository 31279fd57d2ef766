"""Names written outside the Latin alphabet are transliterated for matching, kept as written.

Victims of trafficking are often foreign nationals: an agency may record a name in Cyrillic,
Arabic or Chinese script, another its Latin transliteration. All people here are synthetic.
"""

from __future__ import annotations

import pytest

from streams.resolve import Resolver
from streams.resolve.blocking import blocking_keys
from streams.resolve.normalise import (
    normalise_address,
    normalise_name,
    phonetic,
    spelling_key,
)
from streams.resolve.records import person_features, source_record_from_event
from tests.unit.streams.test_resolver import TRUST, key_sets, person

SCRIPTS = {
    "cyrillic": ("Иван Петров", "ivan petrov"),
    "arabic": ("محمد علي", "mhmd ly"),
    "cjk": ("王伟", "wangwei"),
    "latin with diacritics": ("Łukasz Wójcik-Nguyễn", "lukasz wojcik nguyen"),
    "greek": ("Δημήτρης Παπαδόπουλος", "dimitris papadopoylos"),
}


@pytest.mark.parametrize(("written", "expected"), SCRIPTS.values(), ids=SCRIPTS.keys())
def test_names_in_any_script_normalise_to_stable_non_empty_ascii(
    written: str, expected: str
) -> None:
    normalise_name.cache_clear()
    first = normalise_name(written)
    normalise_name.cache_clear()  # the same answer computed again, not the cached one
    assert first == normalise_name(written) == expected
    assert first.isascii() and first.replace(" ", "").isalpha()
    assert phonetic(first) and phonetic(first).isascii()


def test_lukasz_keeps_his_l() -> None:
    assert normalise_name("Łukasz") == "lukasz"
    assert normalise_name("łukasz") == normalise_name("Lukasz")


def test_latin_names_normalise_as_before() -> None:
    assert normalise_name("  O'Brien-Smith ") == "obrien smith"
    assert normalise_name("O\u2019Brién-Smith") == "obrien smith"
    assert normalise_name("José") == normalise_name("Jose\u0301") == "jose"


def test_symbols_are_not_letters_of_a_name() -> None:
    # anyascii spells an emoji out (":rose:"); that word must not become part of the name.
    assert normalise_name("Maria \U0001f339") == "maria"
    assert normalise_name("\U0001f339") == ""


def test_addresses_in_other_scripts_keep_words_and_numbers() -> None:
    assert normalise_address("ул. Ленина, д. 12") == "ul lenina d 12"
    assert normalise_address("12 Example Lane") == "12 example lane"


def _keys(**fields: object) -> frozenset[str]:
    record = source_record_from_event(person("police-ctu", "P-1", **fields))
    return blocking_keys(person_features(record))


def test_a_name_that_transliterates_to_nothing_makes_no_name_blocking_key() -> None:
    # Private-use characters map to nothing: the name is missing, not an empty key that every
    # such record would share.
    keys = _keys(given_name="\ue000", family_name="\ue001", date_of_birth="1990-01-02")
    assert keys == {"dob:19900102"}


def test_names_in_one_script_get_their_own_blocking_keys() -> None:
    ivan = _keys(given_name="Иван", family_name="Петров", date_of_birth="1990-01-02")
    olga = _keys(given_name="Ольга", family_name="Смирнова", date_of_birth="1990-01-02")
    assert "names:IFN:PTRF" in ivan
    name_kinds = ("name+dob:", "names:", "initials+dob:", "family+initial:", "given+initial:")
    shared = {key for key in ivan & olga if key.startswith(name_kinds)}
    assert not shared


IVAN_CYRILLIC = person(
    "immigration", "IMM-40", 0, given_name="Иван", family_name="Петров",
    date_of_birth="1988-11-23", sex="MALE", citizenship=["RU"],
)
IVAN_LATIN = person(
    "police-ctu", "P-41", 5, given_name="Ivan", family_name="Petrov",
    date_of_birth="1988-11-23", sex="MALE", phones=["+18765550177"],
)


def test_cyrillic_and_its_latin_transliteration_resolve_to_one_golden_person() -> None:
    resolver = Resolver(TRUST)
    resolver.upsert(IVAN_CYRILLIC)
    resolver.upsert(IVAN_LATIN)

    assert key_sets(resolver) == {frozenset({"immigration:IMM-40", "police-ctu:P-41"})}
    golden = resolver.golden(resolver.person_of("immigration", "IMM-40") or "")
    assert golden is not None
    # Police is most trusted for names: its own text wins, not a folded form of either.
    assert (golden["given_name"], golden["family_name"]) == ("Ivan", "Petrov")
    # The Cyrillic spelling stays, as written, for an analyst searching in that script.
    assert "Иван Петров" in golden["aliases"]


def test_the_golden_record_keeps_the_original_script() -> None:
    resolver = Resolver(TRUST)
    changes = resolver.upsert(person(
        "immigration", "IMM-50", 0, given_name="Мария", family_name="Иванова",
        aliases=["Маша Иванова", "Masha Ivanova"], date_of_birth="1995-04-05",
        addresses=[{"line": "ул. Ленина, д. 12", "parish": None, "country": "RU"}],
    ))
    assert changes
    golden = resolver.golden(resolver.person_of("immigration", "IMM-50") or "")
    assert golden is not None
    assert (golden["given_name"], golden["family_name"]) == ("Мария", "Иванова")
    assert golden["aliases"] == ["Маша Иванова", "Masha Ivanova"]
    assert golden["addresses"][0]["line"] == "ул. Ленина, д. 12"


def test_spelling_key_folds_case_and_accents_but_not_script() -> None:
    assert spelling_key("José  O'Brien") == spelling_key("jose obrien")
    assert spelling_key("Иван Петров") != spelling_key("Ivan Petrov")
    assert spelling_key("Иван Петров") == spelling_key("иван петров")


def test_two_people_in_the_same_script_with_different_dates_of_birth_stay_apart() -> None:
    resolver = Resolver(TRUST)
    resolver.upsert(IVAN_CYRILLIC)
    resolver.upsert(person(
        "immigration", "IMM-60", 3, given_name="Ольга", family_name="Смирнова",
        date_of_birth="1979-02-14", sex="FEMALE", citizenship=["RU"],
    ))
    resolver.upsert(person(
        "police-ctu", "P-61", 4, given_name="Иван", family_name="Петров",
        date_of_birth="1971-06-30", sex="MALE",
    ))
    resolver.upsert(person(
        "immigration", "IMM-62", 6, given_name="محمد", family_name="علي",
        date_of_birth="1990-01-02", sex="MALE",
    ))
    resolver.upsert(person(
        "police-ctu", "P-63", 7, given_name="أحمد", family_name="حسن",
        date_of_birth="1985-09-09", sex="MALE",
    ))
    assert key_sets(resolver) == {
        frozenset({"immigration:IMM-40"}), frozenset({"immigration:IMM-60"}),
        frozenset({"police-ctu:P-61"}), frozenset({"immigration:IMM-62"}),
        frozenset({"police-ctu:P-63"}),
    }
