"""The records of the contract as pydantic v2 models: the single source of truth.

The Avro schemas in ``schemas/avsc/`` are generated from these models (``tipsync schemas
export``; a unit test fails when a committed ``.avsc`` differs from what the models generate),
so the validation producers run on agency input and the bytes on the wire cannot drift.

Records are plain dicts shaped exactly like the Avro schema:

- timestamps are timezone-aware ``datetime`` objects (UTC, millisecond precision, which is
  what Avro's ``timestamp-millis`` keeps and what the deserializer returns); validation turns
  any offset into UTC and drops sub-millisecond digits, and refuses naive datetimes;
- calendar dates (``opened_on``, ``retention_until``, ...) are ``datetime.date``;
- a date of birth is a ``'YYYY-MM-DD'`` string with its ``dob_precision`` (unknown month and
  day are written 01), because agencies often know only the year;
- enums are their upper-case symbol strings;
- an agency event has a uniform envelope and a nullable ``payload`` record: an UPSERT carries
  the entity's fields in it, a DELETE carries none.

``validate_event(entity, data)`` validates an agency event and raises ``InvalidEventError``,
whose message lists every field with its problem. ``model.to_record()`` gives the dict the
serializer writes.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import date
from typing import Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from schemas.agencies import UnknownAgencyError
from schemas.entities import (
    AGENCY_NAMESPACE,
    COMMON_NAMESPACE,
    ENTITIES,
    check_entity,
)
from schemas.enums import (
    CaseStatus,
    Classification,
    DatePrecision,
    EntityType,
    FormOfExploitation,
    IdentifierScheme,
    LegalBasis,
    LinkRole,
    LocationRole,
    Operation,
    OrganisationType,
    ReportChannel,
    Sex,
)
from schemas.values import (
    AgencyId,
    CountryCode,
    EmailAddress,
    ParishSymbol,
    PhoneNumber,
    Text,
    Timestamp,
    Uuid,
)

# Each field's ``description`` becomes its Avro ``doc``; ``json_schema_extra={"htcds": ...}``
# names its HTCDS v2 counterpart, listed in docs/DATA_MODEL.md.


# ---------------------------------------------------------------------------------------------
# The base of every record.


class ContractModel(BaseModel):
    """A record of the contract. ``avro_name`` is its Avro full name (and, for a top-level
    record, its subject in the registry)."""

    model_config = ConfigDict(extra="forbid", use_enum_values=True, validate_default=False)

    avro_name: ClassVar[str]
    # The field that keys the record's topic (golden records); the Avro schema lists it first.
    key_field: ClassVar[str | None] = None

    @field_validator("*", mode="before")
    @classmethod
    def _empty_text_is_absent(cls, value: object, info: ValidationInfo) -> object:
        # An export's empty cell means "no value"; for an optional field that is null.
        field = cls.model_fields.get(info.field_name or "")
        if value == "" and field is not None and field.default is None:
            return None
        return value

    def to_record(self) -> dict[str, Any]:
        """The plain dict the Avro serializer writes."""
        return self.model_dump()


# ---------------------------------------------------------------------------------------------
# Shared sub-records.


class Identifier(ContractModel):
    avro_name: ClassVar[str] = f"{COMMON_NAMESPACE}.Identifier"

    scheme: IdentifierScheme = Field(
        description="Which register issued it.", json_schema_extra={"htcds": "-"}
    )
    value: Text = Field(
        description="The identifier as the register writes it, without spaces or dashes.",
        json_schema_extra={"htcds": "-"},
    )
    issuing_country: CountryCode | None = Field(
        None, description="ISO 3166 alpha-2 code of the issuing country; required for passports."
    )

    @model_validator(mode="after")
    def _canonical_value(self) -> Self:
        value = re.sub(r"[\s-]", "", self.value).upper()
        if self.scheme == IdentifierScheme.TRN and not re.fullmatch(r"\d{9}", value):
            raise ValueError(f"TRN '{self.value}' is not 9 digits (e.g. 123-456-789)")
        if self.scheme == IdentifierScheme.PASSPORT:
            if not re.fullmatch(r"[A-Z0-9]{5,12}", value):
                raise ValueError(
                    f"passport number '{self.value}' is not 5 to 12 letters and digits"
                )
            if self.issuing_country is None:
                raise ValueError("a passport needs its issuing_country (ISO 3166 alpha-2, e.g. JM)")
        self.value = value
        return self


class Address(ContractModel):
    avro_name: ClassVar[str] = f"{COMMON_NAMESPACE}.Address"

    line: Text | None = Field(
        None,
        description="Street, district and town as one line.",
        json_schema_extra={"htcds": "MailingStreet, MailingCity"},
    )
    parish: ParishSymbol | None = Field(
        None,
        description="Parish, for addresses in Jamaica.",
        json_schema_extra={"htcds": "MailingState (Jamaica: parish)"},
    )
    country: CountryCode = Field(
        "JM", description="ISO 3166 alpha-2 code.", json_schema_extra={"htcds": "MailingCountry"}
    )


class QualityIssue(ContractModel):
    """A value the producer left out of a published record as invalid; never the value."""

    avro_name: ClassVar[str] = f"{COMMON_NAMESPACE}.QualityIssue"
    field: str = Field(description="The canonical column whose value was left out.")
    problem: str = Field(description="Short code of what was wrong, e.g. impossible_date.")


# ---------------------------------------------------------------------------------------------
# The envelope every agency change event carries.


class EventEnvelope(ContractModel):
    """Who said what about which record, when, and under which data-protection terms."""

    event_id: Uuid = Field(
        description="Unique per event; with agency_id the key that drops a replayed event."
    )
    agency_id: AgencyId = Field(
        description="The publishing agency's id in deploy/agencies.yaml.",
        json_schema_extra={"htcds": "Organisation (owner)"},
    )
    source_record_id: Text = Field(
        description="The record's id in the agency's own system; never a personal identifier."
    )
    op: Operation = Field(description="UPSERT (create or change) or DELETE (no payload).")
    source_version: int = Field(
        ge=0,
        description=(
            "Monotonic per source record (a counter or updated-at in epoch millis); "
            "an older version never overwrites a newer one."
        ),
    )
    event_time: Timestamp = Field(description="When the change happened in the agency's system.")
    produced_at: Timestamp = Field(description="When the producer published the event.")
    classification: Classification = Field(
        description="Sensitivity label that access control applies to the record."
    )
    legal_basis: LegalBasis = Field(
        description="Why the agency may process and share it (Data Protection Act 2020).",
        json_schema_extra={"htcds": "vic_AgreementToManagePersonalData (consent case)"},
    )
    consent_ref: Text | None = Field(
        None,
        description="Reference of the consent record when legal_basis is CONSENT.",
        json_schema_extra={"htcds": "vic_AgreementToManagePersonalData"},
    )
    retention_until: date | None = Field(
        None, description="Date after which the record must be erased or anonymised."
    )
    quality_issues: list[QualityIssue] = Field(
        [], description="Values left out of the payload as invalid (data-quality issues)."
    )

    @model_validator(mode="after")
    def _payload_follows_op(self) -> Self:
        payload = getattr(self, "payload", None)
        if self.op == Operation.UNKNOWN:
            raise ValueError(
                "op UNKNOWN is only an older reader's fallback; publish UPSERT or DELETE"
            )
        if self.op == Operation.UPSERT and payload is None:
            raise ValueError("op UPSERT needs a payload with the record's fields")
        if self.op == Operation.DELETE and payload is not None:
            raise ValueError("op DELETE carries no payload (set payload to null)")
        if self.legal_basis == LegalBasis.CONSENT and self.consent_ref is None:
            raise ValueError("legal_basis CONSENT needs a consent_ref naming the consent record")
        return self


# ---------------------------------------------------------------------------------------------
# Entity payloads.

DATE_OF_BIRTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


class PersonPayload(ContractModel):
    avro_name: ClassVar[str] = f"{AGENCY_NAMESPACE}.PersonPayload"

    given_name: Text | None = Field(
        None, description="First given name.", json_schema_extra={"htcds": "prs_FirstName"}
    )
    middle_name: Text | None = Field(
        None,
        description="Other given names, space-separated.",
        json_schema_extra={"htcds": "prs_MiddleName"},
    )
    family_name: Text | None = Field(
        None, description="Surname.", json_schema_extra={"htcds": "prs_SecondName"}
    )
    aliases: list[Text] = Field(
        [], description="Other names the person is known by (street names, maiden names)."
    )
    date_of_birth: str | None = Field(
        None,
        description="'YYYY-MM-DD'; month and day are 01 when dob_precision says they are unknown.",
        json_schema_extra={"htcds": "prs_Birthdate"},
    )
    dob_precision: DatePrecision | None = Field(
        None, description="How much of date_of_birth is known: DAY, MONTH or YEAR."
    )
    date_of_birth_text: Text | None = Field(
        None, description="An invalid date of birth's text (YYYY-MM-DD shape), for matching."
    )
    sex: Sex = Field(
        Sex.UNKNOWN,
        description="Sex as recorded by the agency.",
        json_schema_extra={"htcds": "prs_Gender"},
    )
    citizenship: list[CountryCode] = Field(
        [],
        description="ISO 3166 alpha-2 codes of every citizenship.",
        json_schema_extra={"htcds": "prs_Nationality"},
    )
    identifiers: list[Identifier] = Field(
        [], description="Strong identifiers: TRN, NIN, passport, driver's licence, NIS."
    )
    phones: list[PhoneNumber] = Field(
        [],
        description="Phone numbers in E.164.",
        json_schema_extra={"htcds": "prs_HomePhone, prs_MobilePhone"},
    )
    emails: list[EmailAddress] = Field(
        [], description="Email addresses, lower case.", json_schema_extra={"htcds": "prs_Email"}
    )
    addresses: list[Address] = Field(
        [], description="Known addresses.", json_schema_extra={"htcds": "prs_Mailing*"}
    )

    @model_validator(mode="after")
    def _date_of_birth_with_precision(self) -> Self:
        if self.date_of_birth is not None and self.date_of_birth_text is not None:
            raise ValueError("date_of_birth_text is only kept when date_of_birth is null")
        if self.date_of_birth is None:
            if self.dob_precision is not None:
                raise ValueError("dob_precision is set but date_of_birth is missing")
            return self
        match = DATE_OF_BIRTH_PATTERN.match(self.date_of_birth)
        try:
            if not match:
                raise ValueError
            year, month, day = (int(part) for part in match.groups())
            date(year, month, day)
        except ValueError:
            raise ValueError(
                f"date_of_birth '{self.date_of_birth}' is not a date "
                "(expected YYYY-MM-DD, with 01 for an unknown month or day)"
            ) from None
        if year < 1880:
            raise ValueError(f"date_of_birth '{self.date_of_birth}' is before 1880")
        if self.dob_precision is None:
            raise ValueError("date_of_birth needs dob_precision (DAY, MONTH or YEAR)")
        if self.dob_precision == DatePrecision.YEAR and (month, day) != (1, 1):
            raise ValueError(
                f"date_of_birth '{self.date_of_birth}' has precision YEAR, "
                f"so write it as {year}-01-01"
            )
        if self.dob_precision == DatePrecision.MONTH and day != 1:
            raise ValueError(
                f"date_of_birth '{self.date_of_birth}' has precision MONTH, "
                f"so write it as {year}-{month:02d}-01"
            )
        return self


class CasePayload(ContractModel):
    avro_name: ClassVar[str] = f"{AGENCY_NAMESPACE}.CasePayload"

    case_ref: Text = Field(
        description="The case reference the agency and its partners quote.",
        json_schema_extra={"htcds": "Case number"},
    )
    title: Text | None = Field(None, description="Short title for lists.")
    status: CaseStatus = Field(
        CaseStatus.UNKNOWN,
        description="Where the case stands.",
        json_schema_extra={"htcds": "cas_Status"},
    )
    opened_on: date | None = Field(
        None,
        description="Date the case was opened.",
        json_schema_extra={"htcds": "cas_IncomingReferralDate"},
    )
    closed_on: date | None = Field(
        None,
        description="Date the case was closed.",
        json_schema_extra={"htcds": "cas_ReasonForCaseClosure"},
    )
    forms_of_exploitation: list[FormOfExploitation] = Field(
        [],
        description="Forms of exploitation alleged or established.",
        json_schema_extra={"htcds": "vic_TypeOfSexExploitation, vic_TypeOfLabourExploitation"},
    )
    parish: ParishSymbol | None = Field(None, description="Parish where the case is handled.")
    summary: Text | None = Field(None, description="Free-text summary; may hold personal data.")

    @model_validator(mode="after")
    def _closed_after_opened(self) -> Self:
        if self.opened_on and self.closed_on and self.closed_on < self.opened_on:
            raise ValueError(f"closed_on {self.closed_on} is before opened_on {self.opened_on}")
        return self


class ReportPayload(ContractModel):
    avro_name: ClassVar[str] = f"{AGENCY_NAMESPACE}.ReportPayload"

    channel: ReportChannel = Field(
        ReportChannel.OTHER,
        description="How the tip came in.",
        json_schema_extra={"htcds": "Guidance: Anti-trafficking Helplines"},
    )
    received_at: Timestamp | None = Field(None, description="When the tip was received.")
    narrative: Text | None = Field(
        None,
        description="What the reporter said; may hold personal data.",
        json_schema_extra={"htcds": "hte_Description"},
    )
    parish: ParishSymbol | None = Field(
        None, description="Parish the tip is about.", json_schema_extra={"htcds": "hte_State"}
    )
    case_ref: Text | None = Field(
        None,
        description="The case the tip was attached to, if any.",
        json_schema_extra={"htcds": "cas_ (lookup)"},
    )


class OrganisationPayload(ContractModel):
    avro_name: ClassVar[str] = f"{AGENCY_NAMESPACE}.OrganisationPayload"

    name: Text = Field(
        description="Registered or trading name.", json_schema_extra={"htcds": "org_Name"}
    )
    aliases: list[Text] = Field([], description="Other trading names.")
    registration_number: Text | None = Field(
        None, description="Companies Office of Jamaica (or foreign) registration number."
    )
    org_type: OrganisationType = Field(
        OrganisationType.OTHER,
        description="Kind of organisation.",
        json_schema_extra={"htcds": "org_Type"},
    )
    industry: Text | None = Field(
        None,
        description="Industry, ideally an ISIC v4 section.",
        json_schema_extra={"htcds": "vic_LabourIndustry"},
    )
    addresses: list[Address] = Field(
        [], description="Known addresses.", json_schema_extra={"htcds": "org_Shipping*"}
    )
    phones: list[PhoneNumber] = Field(
        [], description="Phone numbers in E.164.", json_schema_extra={"htcds": "org_Phone"}
    )
    emails: list[EmailAddress] = Field([], description="Email addresses, lower case.")


class LocationPayload(ContractModel):
    avro_name: ClassVar[str] = f"{AGENCY_NAMESPACE}.LocationPayload"

    name: Text | None = Field(None, description="Name of the place (a bar, a farm, a port).")
    address: Text | None = Field(
        None,
        description="Address as one line.",
        json_schema_extra={"htcds": "hte_Street, hte_City"},
    )
    parish: ParishSymbol | None = Field(
        None, description="Parish, in Jamaica.", json_schema_extra={"htcds": "hte_State"}
    )
    country: CountryCode = Field(
        "JM", description="ISO 3166 alpha-2 code.", json_schema_extra={"htcds": "hte_Country"}
    )
    latitude: float | None = Field(
        None,
        ge=-90,
        le=90,
        description="WGS 84 latitude in degrees.",
        json_schema_extra={"htcds": "hte_Latitude"},
    )
    longitude: float | None = Field(
        None,
        ge=-180,
        le=180,
        description="WGS 84 longitude in degrees.",
        json_schema_extra={"htcds": "hte_Longitude"},
    )
    location_role: LocationRole = Field(
        LocationRole.OTHER,
        description="Part the place played.",
        json_schema_extra={"htcds": "hte_Type"},
    )

    @model_validator(mode="after")
    def _both_coordinates(self) -> Self:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude go together: give both or neither")
        return self


class LinkPayload(ContractModel):
    avro_name: ClassVar[str] = f"{AGENCY_NAMESPACE}.LinkPayload"

    from_entity: EntityType = Field(description="Entity type of the record the link starts at.")
    from_record_id: Text = Field(
        description="source_record_id of that record, in the same agency.",
        json_schema_extra={"htcds": "Lookup fields"},
    )
    to_entity: EntityType = Field(description="Entity type of the record the link ends at.")
    to_record_id: Text = Field(description="source_record_id of that record, in the same agency.")
    link_role: LinkRole = Field(
        LinkRole.OTHER,
        description="What the link says (victim in a case, employer of a person ...).",
        json_schema_extra={"htcds": "per_RoleInProcess"},
    )
    valid_from: date | None = Field(None, description="First day the relation held.")
    valid_to: date | None = Field(None, description="Last day the relation held.")

    @model_validator(mode="after")
    def _valid_period(self) -> Self:
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError(f"valid_to {self.valid_to} is before valid_from {self.valid_from}")
        return self


# ---------------------------------------------------------------------------------------------
# Agency change events: the envelope plus a nullable payload.


class PersonEvent(EventEnvelope):
    avro_name: ClassVar[str] = f"{AGENCY_NAMESPACE}.Person"
    payload: PersonPayload | None = Field(None, description="The person's fields; null on DELETE.")


class CaseEvent(EventEnvelope):
    avro_name: ClassVar[str] = f"{AGENCY_NAMESPACE}.Case"
    payload: CasePayload | None = Field(None, description="The case's fields; null on DELETE.")


class ReportEvent(EventEnvelope):
    avro_name: ClassVar[str] = f"{AGENCY_NAMESPACE}.Report"
    payload: ReportPayload | None = Field(None, description="The report's fields; null on DELETE.")


class OrganisationEvent(EventEnvelope):
    avro_name: ClassVar[str] = f"{AGENCY_NAMESPACE}.Organisation"
    payload: OrganisationPayload | None = Field(
        None, description="The organisation's fields; null on DELETE."
    )


class LocationEvent(EventEnvelope):
    avro_name: ClassVar[str] = f"{AGENCY_NAMESPACE}.Location"
    payload: LocationPayload | None = Field(
        None, description="The location's fields; null on DELETE."
    )


class LinkEvent(EventEnvelope):
    avro_name: ClassVar[str] = f"{AGENCY_NAMESPACE}.Link"
    payload: LinkPayload | None = Field(None, description="The link's fields; null on DELETE.")


EVENT_MODELS: dict[str, type[EventEnvelope]] = {
    "person": PersonEvent,
    "case": CaseEvent,
    "report": ReportEvent,
    "organisation": OrganisationEvent,
    "location": LocationEvent,
    "link": LinkEvent,
}
assert tuple(EVENT_MODELS) == ENTITIES

# ---------------------------------------------------------------------------------------------
# Validation with errors people can act on.


class InvalidEventError(ValueError):
    """An event (or record) that does not match its schema. ``problems`` lists
    ``(field, problem)`` pairs; the message joins them into sentences."""

    def __init__(self, subject: str, problems: list[tuple[str, str]]) -> None:
        self.subject = subject
        self.problems = problems
        listed = "; ".join(
            f"{field}: {problem}" if field else problem for field, problem in problems
        )
        super().__init__(f"{subject} is invalid: {listed}")


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def problems_of(error: ValidationError) -> list[tuple[str, str]]:
    """Turn pydantic's errors into (field path, problem) pairs, e.g.
    ``("payload.identifiers[0].value", "TRN '12' is not 9 digits")``."""
    problems: list[tuple[str, str]] = []
    for item in error.errors(include_url=False):
        path = ""
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = item["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if item["type"] == "missing":
            message = "is required but missing"
        elif item["type"] == "extra_forbidden":
            message = "is not a field of this record (check the spelling, or drop it)"
        elif item["type"] != "value_error":
            message = f"{message} (got {_describe(item.get('input'))})"
        problems.append((path, message))
    return problems


def validate_record(
    model: type[ContractModel], data: Mapping[str, Any], what: str
) -> ContractModel:
    """Validate ``data`` against ``model``; InvalidEventError names ``what`` and each problem."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidEventError(what, problems_of(error)) from None


def validate_event(
    entity: str,
    data: Mapping[str, Any],
    *,
    known_agencies: Collection[str] | None = None,
) -> EventEnvelope:
    """Validate an agency change event of ``entity`` and return its model.

    ``data`` is shaped like the Avro record (see the module docstring). With
    ``known_agencies`` (e.g. ``load_agencies()``), an agency_id that is well formed but not
    in the registry is refused too. Raises InvalidEventError listing every field and its
    problem, or UnknownAgencyError.
    """
    model = EVENT_MODELS[check_entity(entity)]
    source = data.get("source_record_id") if isinstance(data, Mapping) else None
    what = f"{entity} event" + (f" for record '{source}'" if isinstance(source, str) else "")
    event = validate_record(model, data, what)
    assert isinstance(event, EventEnvelope)
    if known_agencies is not None and event.agency_id not in known_agencies:
        raise UnknownAgencyError(event.agency_id, known_agencies)
    return event
