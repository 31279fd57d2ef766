"""The value types of the contract: each checks one kind of value and says what was expected.

Annotated types for pydantic (``Uuid``, ``Timestamp``, ``CountryCode``, ``PhoneNumber``,
``EmailAddress``, ``Text``, ``AgencyId``, ``ParishSymbol``); their error messages name what was
expected, so a producer's reject says how to fix the row.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated

import phonenumbers
from pydantic import AfterValidator, BeforeValidator

from schemas.agencies import validate_agency_id
from schemas.enums import Parish, parish_from_text


def _check_uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(
            f"'{value}' is not a UUID (expected 36 characters like "
            "'123e4567-e89b-42d3-a456-426614174000')"
        ) from None


def _utc_millis(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"'{value.isoformat()}' has no time zone (add one, e.g. '-05:00' for Jamaica or 'Z')"
        )
    # Avro timestamp-millis keeps milliseconds; dropping the rest here makes a round trip exact.
    return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)


# ISO 3166-1 alpha-2: the regions the phone-number library knows, less its two non-ISO ones,
# plus the territories that have no telephone service of their own.
COUNTRY_CODES: frozenset[str] = frozenset(
    (phonenumbers.SUPPORTED_REGIONS - {"AC", "TA"}) | {"AQ", "BV", "GS", "HM", "PN", "TF", "UM"}
)


def _check_country(value: str) -> str:
    code = value.strip().upper()
    if code not in COUNTRY_CODES:
        raise ValueError(
            f"'{value}' is not an ISO 3166 alpha-2 country code (expected two letters, e.g. JM)"
        )
    return code


E164_PATTERN = re.compile(r"^\+[1-9]\d{6,14}$")


def _check_phone(value: str) -> str:
    if not E164_PATTERN.match(value):
        raise ValueError(
            f"'{value}' is not an E.164 phone number "
            "(expected '+', the country code and the number, digits only, e.g. +18765550123)"
        )
    if not phonenumbers.is_possible_number(phonenumbers.parse(value)):
        raise ValueError(f"'{value}' has the wrong number of digits for its country code")
    return value


EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _check_email(value: str) -> str:
    address = value.strip().lower()
    if not EMAIL_PATTERN.match(address):
        raise ValueError(f"'{value}' is not an email address (expected name@domain.tld)")
    return address


def _check_text(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("is empty (leave the field out, or null, when there is no value)")
    if any(ord(character) < 32 and character not in "\n\t" for character in text):
        raise ValueError("contains control characters (remove them at the source)")
    return text


def _parish(value: object) -> object:
    # Agencies write parishes as people do ('St. Andrew'); the contract keeps the symbol.
    if isinstance(value, str) and value not in Parish.__members__:
        return parish_from_text(value).value
    return value


Uuid = Annotated[str, AfterValidator(_check_uuid)]
Timestamp = Annotated[datetime, AfterValidator(_utc_millis)]
CountryCode = Annotated[str, AfterValidator(_check_country)]
PhoneNumber = Annotated[str, AfterValidator(_check_phone)]
EmailAddress = Annotated[str, AfterValidator(_check_email)]
Text = Annotated[str, AfterValidator(_check_text)]
AgencyId = Annotated[str, AfterValidator(validate_agency_id)]
ParishSymbol = Annotated[Parish, BeforeValidator(_parish)]
