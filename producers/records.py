"""A canonical row (column name -> text) becomes a normalised source record.

Pure: no I/O, no Kafka. Every problem found in a row is collected, so the rejects file tells
the agency everything to fix in one pass rather than one problem per run. A record that leaves
here satisfies the contract, including its rules across fields (a case closed before it was
opened, a link that ends before it starts): the contract's model is not run again per event.

A value that cannot be normalised does not cost the agency the whole record: under the
column's ``keep`` policy (the default; ``producers.canonical.InvalidValuePolicy``) it is left
out and recorded as a data-quality issue ``(column, problem code)``, and an invalid date of
birth is kept as text for matching (``date_of_birth_text``). Only a row that cannot be
identified (no usable source_record_id; a person without any usable name because its names
were invalid; a case without case_ref, ...) or is not a change (unreadable updated_at,
deleted, source_version) is rejected, and every value of a column whose policy is ``reject``.
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
    KEEP_INVALID,
    LIST_COLUMNS,
    PERSON_NAME_COLUMNS,
    SHORTEST_MAX_LENGTH,
    Entity,
    InvalidValuePolicy,
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
    # Values left out because they could not be normalised: (column, problem code).
    quality_issues: tuple[tuple[str, str], ...] = field(default=())


def to_source_record(
    entity: Entity,
    row: Mapping[str, str],
    date_formats: Mapping[str, list[str]] | None = None,
    on_invalid: InvalidValuePolicy = KEEP_INVALID,
) -> NormalisedRecord:
    """Normalise one canonical row; raises ``RowError`` naming every bad column that
    ``on_invalid`` does not let the record keep without its value."""
    formats = date_formats or {}
    errors: list[str] = []
    too_long: dict[str, str] = {}
    for column, value in row.items():
        if len(value) > SHORTEST_MAX_LENGTH and len(value) > max_length(column):
            message = (
                f"{column} is {len(value)} characters long, more than the {max_length(column)} "
                "allowed; check the export for a broken cell or an unclosed quote"
            )
            if on_invalid.keeps(entity, column):
                too_long[column] = message
            else:
                errors.append(message)
    if errors:
        raise RowError("; ".join(errors))
    if too_long:
        row = {column: value for column, value in row.items() if column not in too_long}

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

    reader = _FieldReader(entity, row, formats, errors, on_invalid)
    reader.issues.extend((column, "too_long", message) for column, message in too_long.items())
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
        # A DELETE carries no values, so none of them can be flagged.
        quality_issues=() if deleted else tuple(dict.fromkeys(
            (column, problem) for column, problem, _ in reader.issues
        )),
    )


class _FieldReader:
    """Reads columns of one row through normalisers, collecting errors instead of raising."""

    def __init__(
        self,
        entity: Entity,
        row: Mapping[str, str],
        formats: Mapping[str, list[str]],
        errors: list[str],
        on_invalid: InvalidValuePolicy = KEEP_INVALID,
    ) -> None:
        self.entity = entity
        self.row = row
        self.formats = formats
        self.errors = errors
        self.on_invalid = on_invalid
        # Values left out under the keep policy: (column, problem code, message).
        self.issues: list[tuple[str, str, str]] = []
        self.failed: set[str] = set()
        self.deleted = False

    def fail(self, error: FieldError) -> None:
        """A value that cannot be normalised: flagged and left out, or the row's error."""
        self.failed.add(error.column)
        self.problem(error.column, error.problem, str(error))

    def problem(self, column: str, code: str, message: str) -> None:
        """A problem with ``column``'s value; the policy decides: flag it or reject the row."""
        if self.on_invalid.keeps(self.entity, column):
            self.issues.append((column, code, message))
        else:
            self.errors.append(message)

    def flagged(self, column: str) -> bool:
        return any(issue[0] == column for issue in self.issues)

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
            self.fail(error)
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
                self.fail(error)
                return []
        results: list[Any] = []
        for item in normalise.split_list(value):
            try:
                value = normaliser(column, item)
            except FieldError as error:
                self.fail(error)
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
            self.problem(
                column, "not_a_full_date",
                f"{column} {self.row.get(column)!r} is not a full date; write YYYY-MM-DD",
            )
            return None
        return partial.value

    def optional_text(self, column: str) -> str | None:
        return self.text(column) or None


def _timestamp_reader(formats: Mapping[str, list[str]]) -> Callable[[str, str], datetime]:
    return lambda column, value: normalise.timestamp(column, value, formats.get(column))


def _person_payload(reader: _FieldReader) -> dict[str, Any]:
    date_of_birth = reader.date("date_of_birth")
    raw_date_of_birth = reader.row.get("date_of_birth")
    date_of_birth_text = (
        normalise.date_text(raw_date_of_birth, reader.formats.get("date_of_birth"))
        if raw_date_of_birth and reader.flagged("date_of_birth") else None
    )
    identifiers: list[dict[str, Any]] = []
    trn = reader.get("trn", normalise.trn)
    if trn:
        identifiers.append({"scheme": "TRN", "value": trn, "issuing_country": "JM"})
    nin = reader.get("nin", normalise.national_id)
    if nin:
        identifiers.append({"scheme": "NIN", "value": nin, "issuing_country": "JM"})
    passport = reader.get("passport_number", normalise.passport_number)
    passport_country = reader.get("passport_country", normalise.country)
    if passport and not passport_country:
        if reader.on_invalid.keeps(reader.entity, "passport_number"):
            reader.issues.append((
                "passport_number", "no_passport_country",
                "passport_number has no valid passport_country",
            ))
            passport = None
        elif "passport_country" not in reader.failed:
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
    payload = {
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
    if date_of_birth_text is not None:
        # Only when there is one: a record without it hashes as it always did.
        payload["date_of_birth_text"] = date_of_birth_text
    _person_identifiable(reader, payload)
    return payload


def _person_identifiable(reader: _FieldReader, payload: Mapping[str, Any]) -> None:
    """A person whose every name was invalid cannot be identified: its name problems reject
    the row (a person row that simply has no name is published as before)."""
    if reader.deleted or any(payload[column] for column in PERSON_NAME_COLUMNS):
        return
    name_issues = [issue for issue in reader.issues if issue[0] in PERSON_NAME_COLUMNS]
    if not name_issues:
        return
    reader.issues = [issue for issue in reader.issues if issue[0] not in PERSON_NAME_COLUMNS]
    reader.errors.extend(message for _, _, message in name_issues)
    reader.errors.append("no usable name is left; a person needs one to be identified")


def _case_payload(reader: _FieldReader) -> dict[str, Any]:
    if not reader.text("case_ref") and not reader.deleted:
        reader.errors.append("case_ref is empty; a case needs the reference partners quote")
    opened_on = reader.day("opened_on")
    closed_on = reader.day("closed_on")
    if opened_on and closed_on and closed_on < opened_on:
        reader.problem(
            "closed_on", "before_opened_on",
            f"closed_on {closed_on} is before opened_on {opened_on}; fix one of the dates",
        )
        if reader.flagged("closed_on"):
            closed_on = None
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
        alone = "latitude" if latitude is not None else "longitude"
        other = "longitude" if alone == "latitude" else "latitude"
        reader.problem(
            alone, f"without_{other}",
            "latitude and longitude must be given together or both left empty",
        )
        if reader.flagged(alone):
            latitude = longitude = None
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
        reader.problem(
            "valid_to", "before_valid_from",
            f"valid_to {valid_to} is before valid_from {valid_from}; fix one of the dates",
        )
        if reader.flagged("valid_to"):
            valid_to = None
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
    if reader.flagged("role"):
        return ()  # an invalid role was left out: no link to publish
    if bool(role) != bool(case_ref):
        present = "role" if role else "case_ref"
        reader.problem(
            present, "without_role" if present == "case_ref" else "without_case_ref",
            "role and case_ref go together (a person's role in a case); give both or neither",
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

