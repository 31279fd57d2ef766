"""The person record as resolve keeps it, and the comparison features derived from it.

Ingest hands resolve a plain dict shaped like the agency Person event's payload plus the
envelope ids. ``source_record_from_event`` turns it into the JSON-safe dict that resolve stores
(so its state can live in a changelogged table), and ``PersonFeatures`` holds the normalised
forms that blocking and scoring compare; features are derived, never stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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
)
_LIST_FIELDS = frozenset({"aliases", "citizenship", "identifiers", "phones", "emails", "addresses"})


class InvalidPersonRecord(ValueError):
    """A record resolve cannot use; the message names the record, the problem and the fix."""


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
        if field in _LIST_FIELDS:
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


def person_features(record: Mapping[str, Any]) -> PersonFeatures:
    """What blocking and scoring compare, derived from a stored source record."""
    given = normalise_name(record.get("given_name"))
    identifiers: dict[str, set[str]] = {}
    for identifier in record.get("identifiers") or []:
        value = normalise_identifier(identifier.get("value"))
        if value:
            scheme = identifier.get("scheme") or "OTHER"
            scheme = f"{scheme}:{identifier.get('issuing_country') or ''}"
            identifiers.setdefault(scheme, set()).add(value)
    addresses = record.get("addresses") or []
    first_address = addresses[0] if addresses else {}
    sex = record.get("sex") or ""
    address = normalise_address(first_address.get("line"))
    address_tokens = address.split(" ") if address else []
    return PersonFeatures(
        key=source_key(record["agency_id"], record["source_record_id"]),
        given=given,
        given_canonical=canonical_given_name(given),
        middle=normalise_name(record.get("middle_name")),
        family=normalise_name(record.get("family_name")),
        alias_names=tuple(
            pair for pair in (_split_alias(alias) for alias in record.get("aliases") or [])
            if pair[0]
        ),
        date_of_birth=date_of_birth_key(record.get("date_of_birth"), record.get("dob_precision")),
        sex="" if sex == "UNKNOWN" else sex,
        identifiers={scheme: frozenset(values) for scheme, values in identifiers.items()},
        phones=frozenset(p for p in map(normalise_phone, record.get("phones") or []) if p),
        emails=frozenset(e for e in map(normalise_email, record.get("emails") or []) if e),
        address_words=" ".join(t for t in address_tokens if not t.isdigit()),
        address_numbers=frozenset(t for t in address_tokens if t.isdigit()),
        parish=normalise_name(first_address.get("parish")),
        citizenship=frozenset(c.upper() for c in record.get("citizenship") or [] if c),
    )

