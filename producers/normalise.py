"""Normalisation at the edge: every value leaves the agency in one agreed spelling.

Pure functions over strings. Each raises ``FieldError`` with a sentence that names the column,
the offending value and the fix; the caller adds the row number and file name. Normalising
here (and not downstream) means a match between two agencies never fails on ``St Andrew``
versus ``Saint Andrew`` or ``876-555-1234`` versus ``+18765551234``.

What leaves here also satisfies the contract (``schemas.models``): the producer does not run
the contract's pydantic model on every event (see ``producers.encoding``), so each rule the
contract has for a value is applied here, with a message for the agency, and
tests/unit/producers/test_contract_agreement.py fails when the two drift apart.

The parsers that cost the most (phones, parishes, dates, times, names, codes) are memoised:
exports repeat the same values on many rows (parishes, dates of birth, a family's phone), and
a cached answer is the same pure result. Errors are not cached; a bad value is parsed again
each time.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache

import phonenumbers

from producers.canonical import Choice
from schemas.enums import PARISH_NAMES, DatePrecision, Parish
from schemas.values import COUNTRY_CODES, EMAIL_PATTERN

# How many distinct values each memoised parser remembers: enough for the repeated values of a
# large export, not every unique one (a full cache of phone numbers holds about 14 MB).
CACHE_SIZE = 65_536

DEFAULT_PHONE_REGION = "JM"
# Dates before this year are typing mistakes (the contract refuses a date of birth before
# 1880); dates after the last year are too.
EARLIEST_YEAR = 1880
LATEST_YEAR = 2200
# Jamaica has kept UTC-5 all year since 1983; a timestamp without an offset in a Jamaican
# agency's export is local time.
JAMAICA_TIME = timezone(timedelta(hours=-5), "America/Jamaica")


class FieldError(ValueError):
    """One value that cannot be normalised; ``str()`` is a sentence for the agency.

    ``problem`` is a short code of what is wrong (``not_a_date``, ``not_e164``, ...): what a
    data-quality issue records when the value is left out instead of rejecting the row. It
    never holds the value (the message does, and it stays in the agency's rejects file)."""

    def __init__(self, column: str, message: str, problem: str = "invalid") -> None:
        super().__init__(message)
        self.column = column
        self.problem = problem


@dataclass(frozen=True)
class PartialDate:
    """A date known to a day, a month or a year; ``iso`` fills unknown parts with 01."""

    value: date
    precision: DatePrecision

    @property
    def iso(self) -> str:
        return self.value.isoformat()


_WHITESPACE = re.compile(r"\s+")
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf"})


def clean_text(value: str) -> str:
    """NFC, no control characters, single spaces, no leading or trailing space."""
    if value.isascii() and value.isprintable():
        # Most cells: ASCII is already NFC, and printable ASCII has no control characters and
        # no whitespace but the space, so collapsing spaces is all that is left to do.
        return " ".join(value.split())
    composed = unicodedata.normalize("NFC", value)
    if any(unicodedata.category(char) in _CONTROL_CATEGORIES for char in composed):
        composed = "".join(
            " " if unicodedata.category(char) in _CONTROL_CATEGORIES else char
            for char in composed
        )
    return _WHITESPACE.sub(" ", composed).strip()


# Whitespace that exports put around or inside a cell: tidied like spaces, not refused.
_WHITESPACE_CONTROLS = frozenset("\t\n\r")


def record_id(column: str, value: str) -> str:
    """A record's id as it is published, compared and kept in the checkpoint.

    The text of ``clean_text``: raw ids that differ only in spaces (``A  2``, ``A\u00a02``) or
    Unicode composition are one id. A control or invisible formatting character (NUL, ESC,
    a zero-width space) is refused, not turned into a space: such an id is a broken export.
    """
    if value.isascii() and value.isprintable():
        return " ".join(value.split())
    for position, char in enumerate(value, start=1):
        if char not in _WHITESPACE_CONTROLS and unicodedata.category(char) in _CONTROL_CATEGORIES:
            raise FieldError(
                column,
                f"{column} holds a control or invisible formatting character (U+{ord(char):04X}, "
                f"character {position}), and an id with one is not an id; remove it from the "
                "id in your system",
            )
    return clean_text(value)


@lru_cache(maxsize=CACHE_SIZE)
def name(column: str, value: str) -> str | None:
    """A personal or organisation name: cleaned, never re-cased (``McDonald`` stays)."""
    cleaned = clean_text(value)
    if not cleaned:
        return None
    if not any(char.isalpha() for char in cleaned):
        raise FieldError(
            column, f"{column} {value!r} has no letters; write the name or leave it empty",
            "no_letters",
        )
    return cleaned


def split_list(value: str) -> list[str]:
    """A ';'-separated list with empty items dropped."""
    return [item for item in (clean_text(part) for part in value.split(";")) if item]


# The shape of nearly every number in a Jamaican export: a North American number with its
# area code, written 876-555-1234, (876) 555 1234, 876.555.1234 or +1 876 555 1234. Area
# codes and exchanges start with 2-9 in the North American plan, so the ten digits are the
# national number as the library's parser would read it; the parser (two thirds of the cost
# of a new number) is kept for every other way of writing one. A unit test compares both.
_NORTH_AMERICAN = re.compile(r"(?:\+?1[ .-]?)?\(?([2-9]\d\d)\)?[ .-]?([2-9]\d\d)[ .-]?(\d{4})")
_NORTH_AMERICAN_CODE = 1


@lru_cache(maxsize=CACHE_SIZE)
def phone(column: str, value: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """A phone number in E.164; numbers without a country code are read as ``region``."""
    shape = _NORTH_AMERICAN.fullmatch(value.strip())
    try:
        if shape and phonenumbers.country_code_for_region(region) == _NORTH_AMERICAN_CODE:
            parsed = phonenumbers.PhoneNumber(
                country_code=_NORTH_AMERICAN_CODE, national_number=int("".join(shape.groups()))
            )
        else:
            parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as error:
        raise FieldError(
            column,
            f"{column} {value!r} is not a phone number ({error._msg}); write it like "
            "876-555-1234 or +44 20 7946 0958",
            "not_e164",
        ) from None
    # Most numbers are Jamaican: checking the default region's patterns first spares the
    # search over the 25 regions that share +1 (a number valid there is valid, full stop).
    if not (
        phonenumbers.is_valid_number_for_region(parsed, region)
        or phonenumbers.is_valid_number(parsed)
    ):
        raise FieldError(
            column,
            f"{column} {value!r} is not a valid phone number for its country; check the "
            "digits, and add the country code (+...) for numbers outside Jamaica",
            "not_e164",
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def email(column: str, value: str) -> str:
    """An e-mail address in lower case, the contract's spelling of it."""
    cleaned = clean_text(value).lower()
    if not EMAIL_PATTERN.match(cleaned):
        raise FieldError(
            column, f"{column} {value!r} is not an e-mail address; write it like name@example.org",
            "not_an_email",
        )
    return cleaned


_ISO_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def partial_date(
    column: str, value: str, formats: list[str] | tuple[str, ...] | None = None
) -> PartialDate:
    """``YYYY-MM-DD``, ``YYYY-MM`` or ``YYYY`` (precision kept), or the mapping's formats."""
    return _partial_date(column, value, tuple(formats) if formats else None)


@lru_cache(maxsize=CACHE_SIZE)
def _partial_date(column: str, value: str, formats: tuple[str, ...] | None) -> PartialDate:
    cleaned = value.strip()
    if formats:
        return _date_from_formats(column, value, cleaned, formats)
    match = _ISO_DATE.match(cleaned)
    if match:
        year, month, day = match.groups()
        precision = (
            DatePrecision.DAY if day else DatePrecision.MONTH if month else DatePrecision.YEAR
        )
        try:
            parsed = date(int(year), int(month or 1), int(day or 1))
        except ValueError:
            parsed = None
        if parsed is not None:
            return PartialDate(_plausible(column, value, parsed), precision)
    raise FieldError(
        column,
        f"{column} {value!r} is not a date (expected YYYY-MM-DD, or YYYY-MM / YYYY when only "
        "the month or year is known); fix the value or give its format under dates: in the "
        "mapping file",
        "impossible_date" if match else "not_a_date",
    )


def _plausible(column: str, value: str, parsed: date) -> date:
    if not EARLIEST_YEAR <= parsed.year <= LATEST_YEAR:
        raise FieldError(
            column,
            f"{column} {value!r} is not a plausible date (the year must be between "
            f"{EARLIEST_YEAR} and {LATEST_YEAR}); check the value in your system",
            "year_out_of_range",
        )
    if column in PAST_DATES and parsed > _latest_today():
        # A valid answer is memoised, an error is not: a date refused today is read again
        # (and accepted once its day has come) by a producer that runs for days.
        raise FieldError(
            column,
            f"{column} is in the future, which a {column.replace('_', ' ')} cannot be; check "
            "the value in your system (a mistyped year, or a day and month swapped?)",
            "future_date",
        )
    return parsed


# Dates of what has already happened: one after today is a mistake. For a date known only to
# the month or year, its first day is compared (this year's "2024" is not in the future).
PAST_DATES = frozenset({"date_of_birth"})


def _latest_today() -> date:
    """Today where it is latest on Earth (UTC+14): a birth today anywhere is not refused."""
    return (datetime.now(UTC) + timedelta(hours=14)).date()


def _date_from_formats(
    column: str, value: str, cleaned: str, formats: tuple[str, ...]
) -> PartialDate:
    for date_format in formats:
        try:
            parsed = datetime.strptime(cleaned, date_format)
        except ValueError:
            continue
        if "%d" in date_format or "%j" in date_format:
            precision = DatePrecision.DAY
        elif any(directive in date_format for directive in ("%m", "%b", "%B")):
            precision = DatePrecision.MONTH
        else:
            precision = DatePrecision.YEAR
        return PartialDate(_plausible(column, value, parsed.date()), precision)
    raise FieldError(
        column,
        f"{column} {value!r} matches none of the mapping's formats {list(formats)}; fix the value "
        "or add its format under dates: in the mapping file",
        "impossible_date" if _date_shape(cleaned, formats) else "not_a_date",
    )


# A date's shape without its validity: what an invalid date of birth is kept as, for matching.
_ISO_DATE_SHAPE = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")
_SHAPE_DIRECTIVES = {"%d": r"(?P<d>\d{1,2})", "%m": r"(?P<m>\d{1,2})", "%Y": r"(?P<Y>\d{4})"}
_DIRECTIVE = re.compile(r"%.")


def _date_shape(cleaned: str, formats: tuple[str, ...] | None) -> str | None:
    """``YYYY-MM-DD`` from the digits of a value shaped like a full date (ISO, or one of the
    mapping's formats with %d, %m and %Y), whether or not that date exists; else None."""
    if not formats:
        match = _ISO_DATE_SHAPE.match(cleaned)
        if match:
            year, month, day = match.groups()
            return f"{year}-{month:0>2}-{day:0>2}"
        return None
    for date_format in formats:
        directives = _DIRECTIVE.findall(date_format)
        if sorted(directives) != ["%Y", "%d", "%m"]:
            continue
        pattern = "".join(
            _SHAPE_DIRECTIVES[part] if part in _SHAPE_DIRECTIVES else re.escape(part)
            for part in re.split(r"(%.)", date_format) if part
        )
        found = re.fullmatch(pattern, cleaned)
        if found:
            return f"{found['Y']}-{found['m']:0>2}-{found['d']:0>2}"
    return None


def date_text(value: str, formats: list[str] | tuple[str, ...] | None = None) -> str | None:
    """The text kept for matching of a date that is not valid (``1943-01-77``): the digits
    rearranged to ``YYYY-MM-DD`` when the value has a full date's shape, else None (free text
    such as ``unknown`` is no evidence and is not kept)."""
    return _date_shape(clean_text(value), tuple(formats) if formats else None)


def timestamp(
    column: str, value: str, formats: list[str] | tuple[str, ...] | None = None
) -> datetime:
    """An instant in UTC from ISO 8601 (or the mapping's formats); no offset means Jamaica."""
    return _timestamp(column, value, tuple(formats) if formats else None)


@lru_cache(maxsize=CACHE_SIZE)
def _timestamp(column: str, value: str, formats: tuple[str, ...] | None) -> datetime:
    cleaned = value.strip()
    parsed: datetime | None = None
    if formats:
        for timestamp_format in formats:
            try:
                parsed = datetime.strptime(cleaned, timestamp_format)
                break
            except ValueError:
                continue
        if parsed is None:
            raise FieldError(
                column,
                f"{column} {value!r} matches none of the mapping's formats {list(formats)}; "
                "fix the value or add its format under dates: in the mapping file",
                "not_a_time",
            )
    else:
        try:
            parsed = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
        except ValueError:
            raise FieldError(
                column,
                f"{column} {value!r} is not an ISO 8601 time (expected e.g. "
                "2024-05-01T14:30:00-05:00 or 2024-05-01 14:30); fix the value or give its "
                "format under dates: in the mapping file",
                "not_a_time",
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=JAMAICA_TIME)
    return parsed.astimezone(UTC)


@lru_cache(maxsize=CACHE_SIZE)
def choice(column: str, value: str, allowed: Choice) -> str:
    """A coded value (upper-cased, spaces and dashes as underscores, synonyms resolved)."""
    key = re.sub(r"[\s\-]+", "_", clean_text(value).upper())
    key = allowed.synonyms.get(key, key)
    if key not in allowed.values:
        raise FieldError(
            column,
            f"{column} {value!r} is not a known code (expected one of {allowed.describe()}); "
            f"fix the value or translate it under codes.{column} in the mapping file",
            "unknown_code",
        )
    return key


def boolean(column: str, value: str) -> bool:
    key = clean_text(value).lower()
    if key in {"true", "t", "yes", "y", "1"}:
        return True
    if key in {"false", "f", "no", "n", "0", ""}:
        return False
    raise FieldError(
        column,
        f"{column} {value!r} is not true or false; write true/false or translate it under "
        f"codes.{column} in the mapping file",
        "not_a_boolean",
    )


PARISHES: tuple[str, ...] = tuple(PARISH_NAMES.values())


def _parish_key(value: str) -> str:
    key = re.sub(r"[^a-z ]", " ", value.lower())
    key = re.sub(r"\bsaint\b", "st", key)
    key = re.sub(r"\bparish of\b|\bparish\b", " ", key)
    return re.sub(r"\s+", "", key)


_PARISH_BY_KEY: dict[str, str] = {_parish_key(parish): parish for parish in PARISHES}
# Spellings seen in real exports that do not reduce to the canonical key.
_PARISH_BY_KEY.update(
    {
        "kgn": "Kingston",
        "kingstonjamaica": "Kingston",
        "standrews": "St. Andrew",
        "westmorland": "Westmoreland",
        "stelisabeth": "St. Elizabeth",
        "stbess": "St. Elizabeth",
        "mobay": "St. James",
        "stcatherines": "St. Catherine",
        "trelawney": "Trelawny",
    }
)
# Names of more than one parish: guessing would put a person in the wrong place.
_AMBIGUOUS_PARISHES: dict[str, str] = {
    "ksa": "Kingston and St. Andrew",
    "kingstonandstandrew": "Kingston and St. Andrew",
    "kingstonstandrew": "Kingston and St. Andrew",
    "corporatearea": "the Corporate Area (Kingston and St. Andrew)",
}


_SYMBOL_BY_NAME: dict[str, str] = {name: symbol.value for symbol, name in PARISH_NAMES.items()}


def parish_name(column: str, value: str) -> str:
    """One of the 14 parishes, whatever the spelling (``Saint Andrew``, ``st andrew``)."""
    key = _parish_key(value)
    if key in _PARISH_BY_KEY:
        return _PARISH_BY_KEY[key]
    if value.strip().upper() in Parish.__members__ and value.strip().upper() != "UNKNOWN":
        return PARISH_NAMES[Parish[value.strip().upper()]]
    if key in _AMBIGUOUS_PARISHES:
        raise FieldError(
            column,
            f"{column} {value!r} means {_AMBIGUOUS_PARISHES[key]}, which is two parishes; "
            "write Kingston or St. Andrew",
            "ambiguous_parish",
        )
    raise FieldError(
        column,
        f"{column} {value!r} is not one of Jamaica's 14 parishes ({', '.join(PARISHES)}); "
        "fix the spelling or translate it under codes.parish in the mapping file",
        "unknown_parish",
    )


@lru_cache(maxsize=CACHE_SIZE)
def parish(column: str, value: str) -> str:
    """The contract's symbol of the parish (``ST_ANDREW``) for any spelling of it."""
    return _SYMBOL_BY_NAME[parish_name(column, value)]


_TRN_SEPARATORS = re.compile(r"[\s\-.]")
_TRN = re.compile(r"\d{9}")
_SEPARATORS = re.compile(r"[\s\-]")
_PASSPORT = re.compile(r"[A-Z0-9]{5,12}")
_NATIONAL_ID = re.compile(r"[A-Z0-9]{5,20}")


def trn(column: str, value: str) -> str:
    """A Taxpayer Registration Number: exactly 9 digits (spaces and dashes dropped)."""
    digits = _TRN_SEPARATORS.sub("", value)
    if not _TRN.fullmatch(digits):
        raise FieldError(
            column, f"{column} {value!r} is not a TRN (expected 9 digits, e.g. 123-456-789)",
            "not_a_trn",
        )
    return digits


def passport_number(column: str, value: str) -> str:
    """A passport number: upper-case letters and digits, no spaces."""
    cleaned = _SEPARATORS.sub("", value).upper()
    if not _PASSPORT.fullmatch(cleaned):
        raise FieldError(
            column,
            f"{column} {value!r} is not a passport number (expected 5 to 12 letters and digits)",
            "not_a_passport_number",
        )
    return cleaned


def national_id(column: str, value: str) -> str:
    """A national identification number (NIDS): letters and digits, upper-case."""
    cleaned = _SEPARATORS.sub("", value).upper()
    if not _NATIONAL_ID.fullmatch(cleaned):
        raise FieldError(
            column, f"{column} {value!r} is not a national identification number "
            "(expected 5 to 20 letters and digits)",
            "not_a_nin",
        )
    return cleaned


def country(column: str, value: str) -> str:
    code = clean_text(value).upper()
    if code not in COUNTRY_CODES:
        raise FieldError(
            column,
            f"{column} {value!r} is not an ISO 3166 two-letter country code (e.g. JM, US, GB)",
            "not_a_country_code",
        )
    return code


def coordinate(column: str, value: str, limit: float) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        number = float("nan")
    if not -limit <= number <= limit:
        raise FieldError(
            column,
            f"{column} {value!r} is not a decimal number between -{limit:g} and {limit:g}",
            "out_of_range",
        )
    return number


# Avro's long, the type of source_version on the wire.
LARGEST_INTEGER = 2**63 - 1


def integer(column: str, value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        number = -1
    if not 0 <= number <= LARGEST_INTEGER:
        raise FieldError(
            column,
            f"{column} {value!r} is not a whole number between 0 and {LARGEST_INTEGER}",
            "not_a_whole_number",
        )
    return number
