"""Comparison keys: the normalised forms that matching and blocking compare.

Agencies type the same person differently (accents, case, punctuation, "Bill" for "William",
a phone with or without the country code). Everything here is a pure function from what an
agency sent to a form in which equal means "the same value", so that scoring and blocking
never have to care about spelling conventions.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import jellyfish

_NOT_LETTER_OR_SPACE = re.compile(r"[^a-z ]+")
_NOT_ALPHANUMERIC = re.compile(r"[^0-9A-Z]+")
_NOT_DIGIT = re.compile(r"\D+")
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


@lru_cache(maxsize=200_000)
def normalise_name(value: str | None) -> str:
    """Lower case, accents and punctuation removed, hyphens and spaces collapsed to one space.

    ``"  O'Brien-Smith "`` -> ``"obrien smith"``; an empty or missing name is ``""``.
    """
    if not value:
        return ""
    decomposed = unicodedata.normalize("NFKD", value)
    ascii_only = decomposed.encode("ascii", "ignore").decode("ascii").lower()
    # Apostrophes join (O'Brien), hyphens separate (Smith-Jones): agencies write both ways.
    ascii_only = ascii_only.replace("'", "").replace("-", " ")
    return _SPACES.sub(" ", _NOT_LETTER_OR_SPACE.sub(" ", ascii_only)).strip()


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
    decomposed = unicodedata.normalize("NFKD", value)
    ascii_only = decomposed.encode("ascii", "ignore").decode("ascii").lower()
    return _SPACES.sub(" ", re.sub(r"[^a-z0-9 ]+", " ", ascii_only)).strip()


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
