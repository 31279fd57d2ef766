"""The person record as resolve keeps it, and the comparison features derived from it.

Ingest hands resolve a plain dict shaped like the agency Person event's payload plus the
envelope ids. ``source_record_from_event`` turns it into the JSON-safe dict that is resolve's
state (so it can live in a changelogged table); ``SourceRecord`` holds the same values in
memory compactly, and ``PersonFeatures`` holds the normalised forms that blocking and scoring
compare; features are derived, never stored.

Memory matters here: the resolver holds every person record (a million people is the
target), so held values are tuples and slots rather than dicts and lists, strings that repeat
across people (names, dates, agencies, labels) are shared, and empty or repeated small sets
are one object each.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from schemas.topics import source_key
from streams.resolve.normalise import (
    canonical_given_name,
    date_of_birth_key,
    normalise_address,
    normalise_email,
    normalise_identifier,
    normalise_name,
    normalise_phone,
)

SourceKey = str  # "<agency_id>:<source_record_id>", the identity of one agency's record

PERSON_FIELDS: tuple[str, ...] = (
    "given_name", "middle_name", "family_name", "aliases", "date_of_birth", "dob_precision",
    "sex", "citizenship", "identifiers", "phones", "emails", "addresses", "classification",
    # the raw text of an invalid date of birth, and the envelope's data-quality issues
    "date_of_birth_text", "quality_issues",
    # the envelope's last day of keeping, as ISO text (None: no fixed end), and its legal
    # basis and consent reference (the data-protection terms the agency shared it under)
    "retention_until", "legal_basis", "consent_ref",
)
_LIST_FIELDS = frozenset({
    "aliases", "citizenship", "identifiers", "phones", "emails", "addresses", "quality_issues",
})


class InvalidPersonRecord(ValueError):
    """A record resolve cannot use; the message names the record, the problem and the fix."""


# The stored record's fields, in the order of the dict ``source_record_from_event`` returns,
# then the earliest event time resolve saw for the record.
RECORD_FIELDS: tuple[str, ...] = (
    "agency_id", "source_record_id", "source_version", "event_time", *PERSON_FIELDS,
    "first_event_time",
)
_RECORD_FIELD_SET = frozenset(RECORD_FIELDS)
# Scalar values that repeat from person to person: shared, not held once per record.
_SHARED_SCALARS = frozenset({
    "agency_id", "given_name", "middle_name", "family_name", "date_of_birth", "dob_precision",
    "sex", "classification", "retention_until", "legal_basis",
})


def share(value: str) -> str:
    """The one copy of a string that repeats across records (names, dates, labels)."""
    return sys.intern(value)


# The raw text of an invalid date of birth is compared only as 8 digits YYYYMMDD; these are
# placeholders for "unknown", not a typo of a real date, and say nothing.
_PLACEHOLDER_DATES = frozenset(digit * 8 for digit in "0123456789") | {"19000000"}


def date_of_birth_text_key(text: str | None) -> str:
    """The digits of an invalid date of birth's text when they read as YYYYMMDD (a date with
    a mistyped digit, ``1943-01-77`` -> ``19430177``), else ""."""
    if not text:
        return ""
    digits = "".join(char for char in text if char.isdigit())
    if len(digits) != 8 or digits in _PLACEHOLDER_DATES or digits.startswith("0000"):
        return ""
    return digits


# Item fields whose values are one person's own (an identifier's value): not worth sharing.
_UNSHARED_ITEM_FIELDS = frozenset({"value"})


def _compact_item(item: Any) -> Any:
    """A list item as held: a mapping becomes (its keys, *its values), strings shared."""
    if isinstance(item, Mapping):
        return (
            share_keys(tuple(item)),
            *(share(value) if isinstance(value, str) and field not in _UNSHARED_ITEM_FIELDS
              else value for field, value in item.items()),
        )
    return item


_KEY_TUPLES: dict[tuple[str, ...], tuple[str, ...]] = {}


def share_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    """One tuple per distinct key list of the identifiers' and addresses' items."""
    return _KEY_TUPLES.setdefault(keys, keys)


def _expand_item(item: Any) -> Any:
    if isinstance(item, tuple):
        return dict(zip(item[0], item[1:], strict=True))
    return item


class SourceRecord(Mapping[str, Any]):
    """One held source record: the stored dict's values in slots (a read-only mapping).

    Reads give what the dict gave (lists of strings and of dicts are rebuilt on each read),
    so survivorship and the state see the same values; ``to_dict`` is the JSON-safe form.
    """

    __slots__ = RECORD_FIELDS
    agency_id: str
    source_record_id: str
    source_version: int
    event_time: int  # epoch milliseconds
    given_name: str | None
    middle_name: str | None
    family_name: str | None
    aliases: tuple[str, ...]
    date_of_birth: str | None
    dob_precision: str | None
    sex: str | None
    citizenship: tuple[str, ...]
    identifiers: tuple[Any, ...]  # (key tuple, *values) per identifier
    phones: tuple[str, ...]
    emails: tuple[str, ...]
    addresses: tuple[Any, ...]  # (key tuple, *values) per address
    classification: str | None
    date_of_birth_text: str | None
    quality_issues: tuple[Any, ...]  # (key tuple, *values) per {field, problem}
    retention_until: str | None  # ISO date; None in records held before it was kept
    legal_basis: str | None  # None in records held before it was kept
    consent_ref: str | None  # the agency's consent record, when legal_basis is CONSENT
    first_event_time: int  # the earliest event time resolve saw for this record

    def __init__(self, record: Mapping[str, Any], first_event_time: int) -> None:
        for field in RECORD_FIELDS[:-1]:
            value = record.get(field)
            if field in _LIST_FIELDS:
                value = tuple(_compact_item(item) for item in value or ()) if value else ()
            elif field in _SHARED_SCALARS and isinstance(value, str):
                value = share(value)
            setattr(self, field, value)
        self.first_event_time = first_event_time

    def __getitem__(self, field: str) -> Any:
        if field not in _RECORD_FIELD_SET:
            raise KeyError(field)
        value = getattr(self, field)
        if field in _LIST_FIELDS:
            return [_expand_item(item) for item in value]
        return value

    def list_values(self, field: str) -> list[Any]:
        """A list field's items as read (``self[field]``), without the field-name checks."""
        return [_expand_item(item) for item in getattr(self, field)]

    def __iter__(self) -> Iterator[str]:
        return iter(RECORD_FIELDS)

    def __len__(self) -> int:
        return len(RECORD_FIELDS)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, field) for field in RECORD_FIELDS)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SourceRecord):
            # Equal held values are equal records; else compare what a read gives of the
            # fields that differ (two mappings with the same items in another key order are
            # still the same record).
            if self._values() == other._values():
                return True
            for field in RECORD_FIELDS:
                mine, theirs = getattr(self, field), getattr(other, field)
                if mine != theirs and (field not in _LIST_FIELDS or list(
                        map(_expand_item, mine)) != list(map(_expand_item, theirs))):
                    return False
            return True
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        return {field: self[field] for field in RECORD_FIELDS}


def as_source_record(record: Mapping[str, Any]) -> SourceRecord:
    """A held record as is; a stored dict (with its ``first_event_time``) made one."""
    if isinstance(record, SourceRecord):
        return record
    return SourceRecord(record, record["first_event_time"])


def to_epoch_millis(value: Any, what: str) -> int:
    """Event times arrive as datetimes (Avro timestamp-millis), ISO strings or milliseconds."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return to_epoch_millis(datetime.fromisoformat(value.replace("Z", "+00:00")), what)
        except ValueError:
            pass
    raise InvalidPersonRecord(
        f"{what}: event_time {value!r} is not a time; send a datetime, an ISO 8601 string "
        "or epoch milliseconds"
    )


def from_epoch_millis(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def source_record_from_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """The stored, JSON-safe form of one source record (event_time in epoch milliseconds)."""
    agency_id = event.get("agency_id")
    source_record_id = event.get("source_record_id")
    if not agency_id or not source_record_id:
        raise InvalidPersonRecord(
            f"person record {dict(event).get('source_record_id', '?')!r}: agency_id and "
            "source_record_id are both required; ingest must pass the envelope ids along"
        )
    what = f"person record {agency_id}:{source_record_id}"
    version = event.get("source_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidPersonRecord(
            f"{what}: source_version {version!r} is not an integer; pass the envelope's long"
        )
    record: dict[str, Any] = {
        "agency_id": str(agency_id),
        "source_record_id": str(source_record_id),
        "source_version": version,
        "event_time": to_epoch_millis(event.get("event_time"), what),
    }
    for field in PERSON_FIELDS:
        value = event.get(field)
        if field == "retention_until":
            record[field] = value.isoformat() if isinstance(value, date) else value
        elif field in _LIST_FIELDS:
            record[field] = [dict(item) if isinstance(item, Mapping) else item
                             for item in (value or [])]
        else:
            record[field] = value if value not in ("",) else None
    return record


@dataclass(slots=True)
class PersonFeatures:
    """Normalised forms of one source record, computed once when it arrives."""

    key: SourceKey
    given: str
    given_canonical: str
    middle: str
    family: str
    # (given, family) of every alias, normalised; a name match may come from any of them
    alias_names: tuple[tuple[str, str], ...]
    date_of_birth: str
    # the digits of date_of_birth_text when the typed date is missing: weaker evidence
    date_of_birth_text: str
    sex: str
    identifiers: dict[str, frozenset[str]]  # "<scheme>:<issuing country>" -> values
    phones: frozenset[str]
    emails: frozenset[str]
    address_words: str  # the address line without its numbers
    address_numbers: frozenset[str]  # house number, postal code: the line's digit groups
    parish: str
    citizenship: frozenset[str]

    @property
    def name_tokens(self) -> tuple[str, ...]:
        return tuple(part for part in (self.given_canonical, self.family) if part)


def _split_alias(alias: str) -> tuple[str, str]:
    parts = normalise_name(alias).split(" ")
    if len(parts) < 2:
        return (canonical_given_name(parts[0]) if parts and parts[0] else "", "")
    return canonical_given_name(parts[0]), parts[-1]


_NO_STRINGS: frozenset[str] = frozenset()
_NO_IDENTIFIERS: dict[str, frozenset[str]] = {}  # shared: features are never mutated
_SMALL_SETS: dict[frozenset[str], frozenset[str]] = {}


def _shared_set(values: frozenset[str]) -> frozenset[str]:
    """One object per distinct small set that many people have (citizenship, house numbers).

    Sets of values that are one person's own (phones, emails) are not worth sharing.
    """
    if not values:
        return _NO_STRINGS
    return _SMALL_SETS.setdefault(values, values)


def _same_or(original: str, normalised: str) -> str:
    """The original string when normalising did not change it: one copy held, not two."""
    return original if normalised == original else normalised


def _strings(values: Any, normalise: Any) -> frozenset[str]:
    found = frozenset(
        normal for normal in (_same_or(value, normalise(value)) for value in values or ())
        if normal
    )
    return found or _NO_STRINGS


def person_features(record: Mapping[str, Any], key: SourceKey | None = None) -> PersonFeatures:
    """What blocking and scoring compare, derived from a stored source record.

    ``key``, when given, is the record's source key object the caller already holds (so the
    features share it instead of holding a copy).
    """
    given = normalise_name(record.get("given_name"))
    identifiers: dict[str, set[str]] = {}
    for identifier in record.get("identifiers") or []:
        raw = identifier.get("value")
        value = _same_or(raw, normalise_identifier(raw)) if raw else ""
        if value:
            scheme = identifier.get("scheme") or "OTHER"
            scheme = share(f"{scheme}:{identifier.get('issuing_country') or ''}")
            identifiers.setdefault(scheme, set()).add(value)
    addresses = record.get("addresses") or []
    first_address = addresses[0] if addresses else {}
    sex = record.get("sex") or ""
    address = normalise_address(first_address.get("line"))
    address_tokens = address.split(" ") if address else []
    date_key = date_of_birth_key(record.get("date_of_birth"), record.get("dob_precision"))
    return PersonFeatures(
        key=key if key is not None else source_key(record["agency_id"],
                                                   record["source_record_id"]),
        given=given,
        given_canonical=canonical_given_name(given),
        middle=normalise_name(record.get("middle_name")),
        family=normalise_name(record.get("family_name")),
        alias_names=tuple(
            pair for pair in (_split_alias(alias) for alias in record.get("aliases") or [])
            if pair[0]
        ),
        date_of_birth=share(date_key),
        date_of_birth_text=(
            "" if date_key else share(date_of_birth_text_key(record.get("date_of_birth_text")))
        ),
        sex=share("" if sex == "UNKNOWN" else sex),
        identifiers={
            scheme: frozenset(values) for scheme, values in identifiers.items()
        } if identifiers else _NO_IDENTIFIERS,
        phones=_strings(record.get("phones"), normalise_phone),
        emails=_strings(record.get("emails"), normalise_email),
        address_words=share(" ".join(t for t in address_tokens if not t.isdigit())),
        address_numbers=_shared_set(frozenset(t for t in address_tokens if t.isdigit())),
        parish=normalise_name(first_address.get("parish")),
        citizenship=_shared_set(
            frozenset(c.upper() for c in record.get("citizenship") or [] if c)
        ),
    )
