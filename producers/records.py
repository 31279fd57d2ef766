"""A canonical row (column name -> text) becomes a normalised source record.

Pure: no I/O, no Kafka. Every problem found in a row is collected, so the rejects file tells
the agency everything to fix in one pass rather than one problem per run. A record that leaves
here satisfies the contract, including its rules across fields (a case closed before it was
opened, a link that ends before it starts): the contract's model is not run again per event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from producers import normalise
from producers.canonical import (
    CODED_COLUMNS,
    LIST_COLUMNS,
    SHORTEST_MAX_LENGTH,
    Entity,
    max_length,
)
from producers.normalise import FieldError

MAX_SOURCE_RECORD_ID_LENGTH = 200
# The person -> case link that a person row with role and case_ref yields gets this suffix
# on the person's source_record_id: one derived link per person row, so a changed role or
# case_ref is an update of that link and a removed one is its DELETE.
CASE_LINK_SUFFIX = "#case-link"
# updated_at becomes source_version in milliseconds since 1970, which the contract wants >= 0.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RowError(ValueError):
    """A row that cannot be published; ``str()`` lists every problem, each with its fix."""


@dataclass(frozen=True)
class NormalisedRecord:
    """One record of an agency's system, normalised, ready to become change events.

    Not to be confused with the contract's ``schemas.models.SourceRecord`` (a golden record's
    lineage entry) or the resolver's ``streams.resolve.records.SourceRecord`` (a record it
    holds): this is what a producer makes of one row before anything is published."""

    entity: Entity
    source_record_id: str
    deleted: bool
    updated_at: datetime | None
    explicit_version: int | None
    payload: dict[str, Any]
    # Records this row implies in other entities (today: a person's link to a case).
    derived: tuple[NormalisedRecord, ...] = field(default=())


def to_source_record(
    entity: Entity,
    row: Mapping[str, str],
    date_formats: Mapping[str, list[str]] | None = None,
) -> NormalisedRecord:
    """Normalise one canonical row; raises ``RowError`` naming every bad column."""
    formats = date_formats or {}
    errors: list[str] = []
    for column, value in row.items():
        if len(value) > SHORTEST_MAX_LENGTH and len(value) > max_length(column):
            errors.append(
                f"{column} is {len(value)} characters long, more than the {max_length(column)} "
                "allowed; check the export for a broken cell or an unclosed quote"
            )
    if errors:
        raise RowError("; ".join(errors))

    source_record_id = ""
    try:
        source_record_id = normalise.record_id("source_record_id", row.get("source_record_id", ""))
    except FieldError as error:
        errors.append(str(error))
    else:
        if not source_record_id:
            errors.append(
                "source_record_id is empty; every row needs the record's id in your system"
            )
    if len(source_record_id) > MAX_SOURCE_RECORD_ID_LENGTH:
        errors.append(
            f"source_record_id is longer than {MAX_SOURCE_RECORD_ID_LENGTH} characters"
        )

    reader = _FieldReader(entity, row, formats, errors)
    deleted = reader.get("deleted", normalise.boolean) or False
    reader.deleted = deleted
    updated_at = reader.get("updated_at", _timestamp_reader(formats))
    if updated_at is not None and updated_at < EPOCH:
        errors.append(
            f"updated_at {row.get('updated_at')!r} is before 1970; it cannot be when the record "
            "last changed, check the column (or give a source_version column)"
        )
    explicit_version = reader.get("source_version", normalise.integer)
    payload = _PAYLOAD_BUILDERS[entity](reader)
    if errors:
        raise RowError("; ".join(errors))

    derived: tuple[NormalisedRecord, ...] = ()
    if entity is Entity.PERSON:
        derived = _person_case_link(
            source_record_id, reader, deleted, updated_at, explicit_version, errors
        )
        if errors:
            raise RowError("; ".join(errors))
    return NormalisedRecord(
        entity=entity,
        source_record_id=source_record_id,
        deleted=deleted,
        updated_at=updated_at,
        explicit_version=explicit_version,
        payload=payload,
        derived=derived,
    )


class _FieldReader:
    """Reads columns of one row through normalisers, collecting errors instead of raising."""

    def __init__(
        self,
        entity: Entity,
        row: Mapping[str, str],
        formats: Mapping[str, list[str]],
        errors: list[str],
    ) -> None:
        self.entity = entity
        self.row = row
        self.formats = formats
        self.errors = errors
        self.failed: set[str] = set()
        self.deleted = False

    def text(self, column: str) -> str:
        value = self.row.get(column)
        return normalise.clean_text(value) if value else ""

    def get(self, column: str, normaliser: Callable[[str, str], Any]) -> Any:
        value = self.row.get(column)
        if not value or value.isspace():
            return None
        try:
            return normaliser(column, value)
        except FieldError as error:
            self.errors.append(str(error))
            self.failed.add(column)
            return None

    def many(self, column: str, normaliser: Callable[[str, str], Any]) -> list[Any]:
        value = self.row.get(column)
        if not value:
            return []
        if ";" not in value:
            # One item, the usual case: no list to split and no repeats to drop.
            item = normalise.clean_text(value)
            if not item:
                return []
            try:
                return [normaliser(column, item)]
            except FieldError as error:
                self.errors.append(str(error))
                return []
        results: list[Any] = []
        for item in normalise.split_list(value):
            try:
                value = normaliser(column, item)
            except FieldError as error:
                self.errors.append(str(error))
                continue
            if value not in results:
                results.append(value)
        return results

    def coded(self, column: str) -> Any:
        allowed = CODED_COLUMNS[(self.entity, column)]
        if column in LIST_COLUMNS:
            return self.many(column, lambda name, value: normalise.choice(name, value, allowed))
        return self.get(column, lambda name, value: normalise.choice(name, value, allowed))

    def date(self, column: str) -> normalise.PartialDate | None:
        formats = self.formats.get(column)
        partial: normalise.PartialDate | None = self.get(
            column, lambda name, value: normalise.partial_date(name, value, formats)
        )
        return partial

    def day(self, column: str) -> dt.date | None:
        """A date that must be known to the day (case and link dates)."""
        partial = self.date(column)
        if partial is None:
            return None
        if partial.precision is not normalise.DatePrecision.DAY:
            self.errors.append(
                f"{column} {self.row.get(column)!r} is not a full date; write YYYY-MM-DD"
            )
            return None
        return partial.value

    def optional_text(self, column: str) -> str | None:
        return self.text(column) or None


def _timestamp_reader(formats: Mapping[str, list[str]]) -> Callable[[str, str], datetime]:
    return lambda column, value: normalise.timestamp(column, value, formats.get(column))


def _person_payload(reader: _FieldReader) -> dict[str, Any]:
    date_of_birth = reader.date("date_of_birth")
    identifiers: list[dict[str, Any]] = []
    trn = reader.get("trn", normalise.trn)
    if trn:
        identifiers.append({"scheme": "TRN", "value": trn, "issuing_country": "JM"})
    nin = reader.get("nin", normalise.national_id)
    if nin:
        identifiers.append({"scheme": "NIN", "value": nin, "issuing_country": "JM"})
    passport = reader.get("passport_number", normalise.passport_number)
    passport_country = reader.get("passport_country", normalise.country)
    if passport and not passport_country and "passport_country" not in reader.failed:
        reader.errors.append(
            "passport_country is empty; a passport number needs the two-letter code of the "
            "country that issued it (e.g. JM)"
        )
    if passport:
        identifiers.append(
            {"scheme": "PASSPORT", "value": passport, "issuing_country": passport_country}
        )
    address = reader.optional_text("address")
    parish = reader.get("parish", normalise.parish)
    addresses = (
        [{"line": address, "parish": parish, "country": "JM"}] if address or parish else []
    )
    return {
        "given_name": reader.get("given_name", normalise.name),
        "middle_name": reader.get("middle_name", normalise.name),
        "family_name": reader.get("family_name", normalise.name),
        "aliases": reader.many("aliases", normalise.name),
        "date_of_birth": date_of_birth.iso if date_of_birth else None,
        "dob_precision": date_of_birth.precision.value if date_of_birth else None,
        "sex": reader.coded("sex") or "UNKNOWN",
        "citizenship": reader.many("citizenship", normalise.country),
        "identifiers": identifiers,
        "phones": reader.many("phone", normalise.phone),
        "emails": reader.many("email", normalise.email),
        "addresses": addresses,
    }


def _case_payload(reader: _FieldReader) -> dict[str, Any]:
    if not reader.text("case_ref") and not reader.deleted:
        reader.errors.append("case_ref is empty; a case needs the reference partners quote")
    opened_on = reader.day("opened_on")
    closed_on = reader.day("closed_on")
    if opened_on and closed_on and closed_on < opened_on:
        reader.errors.append(
            f"closed_on {closed_on} is before opened_on {opened_on}; fix one of the dates"
        )
    return {
        "case_ref": reader.optional_text("case_ref"),
        "title": reader.optional_text("title"),
        "status": reader.coded("status") or "UNKNOWN",
        "opened_on": opened_on,
        "closed_on": closed_on,
        "forms_of_exploitation": reader.coded("forms_of_exploitation"),
        "parish": reader.get("parish", normalise.parish),
        "summary": reader.optional_text("summary"),
    }


def _report_payload(reader: _FieldReader) -> dict[str, Any]:
    return {
        "channel": reader.coded("channel") or "OTHER",
        "received_at": reader.get("received_at", _timestamp_reader(reader.formats)),
        "narrative": reader.optional_text("narrative"),
        "parish": reader.get("parish", normalise.parish),
        "case_ref": reader.optional_text("case_ref"),
    }


def _organisation_payload(reader: _FieldReader) -> dict[str, Any]:
    name = reader.get("name", normalise.name)
    if name is None and not reader.deleted and "name" not in reader.failed:
        reader.errors.append("name is empty; an organisation needs its name")
    address = reader.optional_text("address")
    parish = reader.get("parish", normalise.parish)
    return {
        "name": name,
        "aliases": reader.many("aliases", normalise.name),
        "registration_number": reader.optional_text("registration_number"),
        "org_type": reader.coded("org_type") or "OTHER",
        "industry": reader.optional_text("industry"),
        "addresses": (
            [{"line": address, "parish": parish, "country": "JM"}] if address or parish else []
        ),
        "phones": reader.many("phone", normalise.phone),
        "emails": reader.many("email", normalise.email),
    }


def _location_payload(reader: _FieldReader) -> dict[str, Any]:
    latitude = reader.get("latitude", lambda column, value: normalise.coordinate(column, value, 90))
    longitude = reader.get(
        "longitude", lambda column, value: normalise.coordinate(column, value, 180)
    )
    if (latitude is None) != (longitude is None):
        reader.errors.append("latitude and longitude must be given together or both left empty")
    return {
        "name": reader.get("name", normalise.name),
        "address": reader.optional_text("address"),
        "parish": reader.get("parish", normalise.parish),
        "country": "JM",
        "latitude": latitude,
        "longitude": longitude,
        "location_role": reader.coded("location_role") or "OTHER",
    }


def _link_payload(reader: _FieldReader) -> dict[str, Any]:
    valid_from = reader.day("valid_from")
    valid_to = reader.day("valid_to")
    if valid_from and valid_to and valid_to < valid_from:
        reader.errors.append(
            f"valid_to {valid_to} is before valid_from {valid_from}; fix one of the dates"
        )
    payload = {
        "from_entity": reader.coded("from_entity"),
        "from_record_id": reader.get("from_record_id", normalise.record_id),
        "to_entity": reader.coded("to_entity"),
        "to_record_id": reader.get("to_record_id", normalise.record_id),
        "link_role": reader.coded("link_role"),
        "valid_from": valid_from,
        "valid_to": valid_to,
    }
    if not reader.deleted:
        for column in ("from_entity", "from_record_id", "to_entity", "to_record_id", "link_role"):
            if payload[column] is None and column not in reader.failed:
                reader.errors.append(f"{column} is empty; a link needs both ends and a role")
    return payload


_PAYLOAD_BUILDERS: dict[Entity, Callable[[_FieldReader], dict[str, Any]]] = {
    Entity.PERSON: _person_payload,
    Entity.CASE: _case_payload,
    Entity.REPORT: _report_payload,
    Entity.ORGANISATION: _organisation_payload,
    Entity.LOCATION: _location_payload,
    Entity.LINK: _link_payload,
}


def _person_case_link(
    person_id: str,
    reader: _FieldReader,
    deleted: bool,
    updated_at: datetime | None,
    explicit_version: int | None,
    errors: list[str],
) -> tuple[NormalisedRecord, ...]:
    role = reader.coded("role")
    case_ref = reader.optional_text("case_ref")
    if bool(role) != bool(case_ref):
        errors.append(
            "role and case_ref go together (a person's role in a case); give both or neither"
        )
        return ()
    if not role:
        return ()
    link = NormalisedRecord(
        entity=Entity.LINK,
        source_record_id=person_id + CASE_LINK_SUFFIX,
        deleted=deleted,
        updated_at=updated_at,
        explicit_version=explicit_version,
        payload={
            "from_entity": "PERSON",
            "from_record_id": person_id,
            "to_entity": "CASE",
            "to_record_id": case_ref,
            "link_role": role,
            "valid_from": None,
            "valid_to": None,
        },
    )
    return (link,)

