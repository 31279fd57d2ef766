"""Comparison keys: the normalised forms that matching and blocking compare.

Agencies type the same person differently (accents, case, punctuation, "Bill" for "William",
a phone with or without the country code, Cyrillic or Arabic script or its Latin
transliteration). Everything here is a pure function from what an agency sent to a form in
which equal means "the same value", so that scoring and blocking never have to care about
spelling conventions.

Names and addresses are transliterated to ASCII with ``anyascii`` (ISC licence) before they are
folded: ``"Иван Петров"`` -> ``"ivan petrov"``, ``"Łukasz"`` -> ``"lukasz"``, ``"王伟"`` ->
``"wangwei"``. Dropping what is not ASCII instead would erase every name written in another
script, and victims of trafficking are often foreign nationals. These forms are matching keys
only: the golden record keeps each agency's original text (``spelling_key`` decides which
spellings are the same alias without transliterating). anyascii is pinned in pyproject.toml:
a release that romanises a character differently changes matching keys.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import jellyfish
from anyascii import anyascii

_NOT_LETTER_OR_SPACE = re.compile(r"[^a-z ]+")
# Apostrophes join (O'Brien): anyascii writes ' for the Cyrillic soft sign and the Arabic hamza
# and ` for the Arabic ain, all inside a word, so they join as well (El'tsin, Ja`far).
_JOINING_MARKS = str.maketrans("", "", "'`")
# The apostrophes agencies type (ASCII, typographic, modifier letter) and the ` of the ain.
_APOSTROPHES = frozenset("'`\u2019\u02bc")
_NOT_ALPHANUMERIC = re.compile(r"[^0-9A-Z]+")
_NOT_DIGIT = re.compile(r"\D+")
_NOT_ADDRESS_CHARACTER = re.compile(r"[^a-z0-9 ]+")
_SPACES = re.compile(r"\s+")

# Common English and Caribbean diminutives -> the formal given name. A nickname is not a typo:
# "Bill" and "William" share no letters a string distance would reward, yet an agency officer
# writing down what a person calls themself produces exactly this pair. The table is general
# knowledge about names, not about any one data set.
NICKNAMES: dict[str, str] = {
    "abby": "abigail", "al": "albert", "alex": "alexander", "andy": "andrew",
    "annie": "ann", "anne": "ann", "anna": "ann", "barb": "barbara", "becky": "rebecca",
    "ben": "benjamin", "bert": "albert", "beth": "elizabeth", "betty": "elizabeth",
    "bill": "william", "billy": "william", "bob": "robert", "bobby": "robert",
    "cathy": "catherine", "kathy": "catherine", "katherine": "catherine",
    "kathryn": "catherine", "kate": "catherine", "katie": "catherine", "cindy": "cynthia",
    "chris": "christopher", "dan": "daniel", "danny": "daniel", "dave": "david",
    "debbie": "deborah", "debra": "deborah", "dick": "richard", "don": "donald",
    "doug": "douglas", "ed": "edward", "eddie": "edward", "ted": "edward", "teddy": "edward",
    "fred": "frederick", "freddy": "frederick", "gabe": "gabriel", "greg": "gregory",
    "harry": "henry", "hank": "henry", "jack": "john", "johnny": "john", "jon": "john",
    "jim": "james", "jimmy": "james", "jamie": "james", "jen": "jennifer",
    "jenny": "jennifer", "jeff": "jeffrey", "jerry": "gerald", "joe": "joseph",
    "joey": "joseph", "josh": "joshua", "kim": "kimberly", "larry": "lawrence",
    "liz": "elizabeth", "lizzie": "elizabeth", "eliza": "elizabeth", "maggie": "margaret",
    "meg": "margaret", "peggy": "margaret", "matt": "matthew", "mike": "michael",
    "mick": "michael", "mikey": "michael", "nick": "nicholas", "pat": "patricia",
    "patty": "patricia", "pete": "peter", "rick": "richard", "ricky": "richard",
    "rich": "richard", "rob": "robert", "robbie": "robert", "ron": "ronald",
    "sam": "samuel", "sammy": "samuel", "sandy": "sandra", "steve": "stephen",
    "steven": "stephen", "sue": "susan", "susie": "susan", "tom": "thomas",
    "tommy": "thomas", "tony": "anthony", "vicky": "victoria", "vince": "vincent",
    "will": "william", "willie": "william", "zach": "zachary",
}


def _transliterated(value: str) -> str:
    """``value`` in ASCII letters, lower case: other scripts romanised, accents dropped.

    anyascii maps each character on its own (``Ł`` -> ``L``, ``Ж`` -> ``Zh``, ``王`` -> ``Wang``)
    and drops combining marks and what it cannot map; ASCII text comes back unchanged, at the
    cost of one ``str.isascii`` check.
    """
    return anyascii(value).lower()


@lru_cache(maxsize=200_000)
def normalise_name(value: str | None) -> str:
    """Transliterated to ASCII, lower case, punctuation removed, spaces collapsed to one.

    ``"  O'Brien-Smith "`` -> ``"obrien smith"``, ``"Иван Петров"`` -> ``"ivan petrov"``,
    ``"Łukasz"`` -> ``"lukasz"``; an empty or missing name is ``""``. A name of symbols only,
    or of characters anyascii cannot map, is ``""`` as well: blocking and scoring read it as
    missing.
    """
    if not value:
        return ""
    if not value.isascii():
        # anyascii spells symbols out (an emoji becomes ":rose:"): in a name they are not
        # letters of it, and a word made of one would match strangers.
        value = "".join(char for char in value if unicodedata.category(char)[0] != "S")
    # Apostrophes join (O'Brien), hyphens separate (Smith-Jones): agencies write both ways.
    folded = _transliterated(value).translate(_JOINING_MARKS).replace("-", " ")
    return _SPACES.sub(" ", _NOT_LETTER_OR_SPACE.sub(" ", folded)).strip()


@lru_cache(maxsize=200_000)
def spelling_key(value: str | None, *, digits: bool = False) -> str:
    """The written form up to case, accents and punctuation, in its own script.

    Survivorship uses it to tell which spellings of a name (or address) are the same alias:
    ``"José"`` and ``"jose"`` are one spelling, but ``"Иван Петров"`` and ``"Ivan Petrov"`` are
    two, so an analyst searching in the script an agency used still finds the person.
    Matching compares ``normalise_name`` instead, where those two agree. ``digits`` keeps
    digits (house numbers in addresses).
    """
    if not value:
        return ""
    kept: list[str] = []
    # Under NFKD accents come apart as nonspacing marks (Mn); dropping them folds é onto e.
    for char in unicodedata.normalize("NFKD", value).casefold():
        category = unicodedata.category(char)
        if category == "Mn" or char in _APOSTROPHES:
            continue  # accents go, apostrophes join (O'Brien), as in normalise_name
        if category[0] in "LM" or (digits and category == "Nd"):
            kept.append(char)  # letters and spacing vowel signs (Mc) of any script
        else:
            kept.append(" ")
    return _SPACES.sub(" ", "".join(kept)).strip()


@lru_cache(maxsize=200_000)
def canonical_given_name(normalised: str) -> str:
    """The formal name behind a nickname (``"bill"`` -> ``"william"``), else the name itself."""
    return NICKNAMES.get(normalised, normalised)


@lru_cache(maxsize=200_000)
def phonetic(normalised: str) -> str:
    """A sound-alike code (metaphone of the name without spaces): Smith and Smyth agree."""
    if not normalised:
        return ""
    return jellyfish.metaphone(normalised.replace(" ", "")) or normalised[:4]


def normalise_identifier(value: str | None) -> str:
    """Upper case letters and digits only: ``"a12-345 6"`` -> ``"A123456"``."""
    if not value:
        return ""
    return _NOT_ALPHANUMERIC.sub("", value.upper())


def normalise_phone(value: str | None) -> str:
    """Digits only, so ``+1 876-555-0101`` and ``+18765550101`` agree (E.164 upstream)."""
    if not value:
        return ""
    return _NOT_DIGIT.sub("", value)


def normalise_email(value: str | None) -> str:
    """Trimmed and lower case: mailbox names are case-insensitive in practice."""
    return (value or "").strip().lower()


def normalise_address(value: str | None) -> str:
    """Same treatment as names, keeping digits (house numbers and postcodes carry weight)."""
    if not value:
        return ""
    return _SPACES.sub(" ", _NOT_ADDRESS_CHARACTER.sub(" ", _transliterated(value))).strip()


def date_of_birth_key(value: str | None, precision: str | None) -> str:
    """The known part of a date of birth as digits: ``YYYYMMDD``, ``YYYYMM`` or ``YYYY``.

    The contract writes unknown month and day as ``01``; those digits are not evidence, so
    they are cut off here instead of being compared as if they were known.
    """
    if not value:
        return ""
    digits = _NOT_DIGIT.sub("", value)
    if len(digits) != 8:
        return ""
    if precision == "YEAR":
        return digits[:4]
    if precision == "MONTH":
        return digits[:6]
    return digits
