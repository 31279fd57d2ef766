"""The reconciled records of the contract (streams -> sink) as pydantic v2 models.

Golden records (one per entity) with the agency records merged into them and the lineage of
every surviving value, and the match decisions that say why two records were linked. Like the
agency events (``schemas.models``), the Avro schemas in ``schemas/avsc/`` are generated from
these models.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from pydantic import Field

from schemas.entities import RECONCILED_NAMESPACE
from schemas.enums import Classification, EntityType, LegalBasis, LinkRole, MatchOutcome
from schemas.models import (
    CasePayload,
    ContractModel,
    LocationPayload,
    OrganisationPayload,
    PersonPayload,
    QualityIssue,
    ReportPayload,
    Timestamp,
    Uuid,
)


class SourceRecord(ContractModel):
    """One agency record that contributes to a golden record."""

    avro_name: ClassVar[str] = f"{RECONCILED_NAMESPACE}.SourceRecord"

    agency_id: str = Field(description="Agency that holds the record.")
    source_record_id: str = Field(description="The record's id in that agency.")
    source_version: int = Field(description="Latest version of it that was applied.")
    event_time: Timestamp = Field(description="When that version changed at the agency.")
    deleted: bool = Field(False, description="True once the agency deleted the record.")
    quality_issues: list[QualityIssue] = Field(
        [], description="Data-quality issues of the version applied (values left out)."
    )
    retention_until: date | None = Field(
        None,
        description="Last day the agency may keep the record (its event's retention_until);"
        " tipsync retention enforce erases it after that day. Null: no fixed end.",
    )
    legal_basis: LegalBasis | None = Field(
        None,
        description="Why the agency may process and share the record (its event's"
        " legal_basis). Null: from a version that did not carry it along.",
    )
    consent_ref: str | None = Field(
        None,
        description="Reference of the consent record when legal_basis is CONSENT (its"
        " event's consent_ref); the data protection officer's, not the analysts'.",
    )


class FieldLineage(ContractModel):
    """Where one golden field's value came from."""

    avro_name: ClassVar[str] = f"{RECONCILED_NAMESPACE}.FieldLineage"

    field: str = Field(description="Golden field name, e.g. date_of_birth.")
    agency_id: str = Field(description="Agency whose value survived.")
    source_record_id: str = Field(description="Record the value came from.")
    source_version: int = Field(description="Version of that record.")
    event_time: Timestamp = Field(description="When that version changed at the agency.")


class GoldenRecordFields(ContractModel):
    """What every golden record carries besides its entity's fields."""

    golden_version: int = Field(
        ge=0, description="Increases with every change of this golden record."
    )
    classification: Classification = Field(
        Classification.VICTIM_PROTECTED,
        description="Most protective classification among the sources.",
    )
    sources: list[SourceRecord] = Field([], description="Every agency record merged into this one.")


class GoldenPerson(PersonPayload, GoldenRecordFields):
    """A person as the task force sees them, across agencies. Key: person_id."""

    avro_name: ClassVar[str] = f"{RECONCILED_NAMESPACE}.GoldenPerson"
    key_field: ClassVar[str | None] = "person_id"

    person_id: Uuid = Field(description="Stable golden id; the older id survives a merge.")
    merged_into: Uuid | None = Field(
        None,
        description="Set when this id was merged into a surviving one; the rest is then empty.",
    )
    first_seen: Timestamp = Field(
        description="When the first source record of this person arrived."
    )
    last_updated: Timestamp = Field(description="When this golden record last changed.")
    lineage: list[FieldLineage] = Field(
        [], description="For each golden field, the source its value came from."
    )


class GoldenCase(CasePayload, GoldenRecordFields):
    avro_name: ClassVar[str] = f"{RECONCILED_NAMESPACE}.GoldenCase"
    key_field: ClassVar[str | None] = "case_id"
    case_id: Uuid = Field(
        description="Golden id: uuid5 of '<agency_id>:<source_record_id>' for now."
    )


class GoldenReport(ReportPayload, GoldenRecordFields):
    avro_name: ClassVar[str] = f"{RECONCILED_NAMESPACE}.GoldenReport"
    key_field: ClassVar[str | None] = "report_id"
    report_id: Uuid = Field(
        description="Golden id: uuid5 of '<agency_id>:<source_record_id>' for now."
    )


class GoldenOrganisation(OrganisationPayload, GoldenRecordFields):
    avro_name: ClassVar[str] = f"{RECONCILED_NAMESPACE}.GoldenOrganisation"
    key_field: ClassVar[str | None] = "organisation_id"
    organisation_id: Uuid = Field(
        description="Golden id: uuid5 of '<agency_id>:<source_record_id>' for now."
    )


class GoldenLocation(LocationPayload, GoldenRecordFields):
    avro_name: ClassVar[str] = f"{RECONCILED_NAMESPACE}.GoldenLocation"
    key_field: ClassVar[str | None] = "location_id"
    location_id: Uuid = Field(
        description="Golden id: uuid5 of '<agency_id>:<source_record_id>' for now."
    )


class GoldenLink(GoldenRecordFields):
    """A link between two golden records (both ends are golden ids)."""

    avro_name: ClassVar[str] = f"{RECONCILED_NAMESPACE}.GoldenLink"
    key_field: ClassVar[str | None] = "link_id"

    link_id: Uuid = Field(
        description="Golden id: uuid5 of '<agency_id>:<source_record_id>' for now."
    )
    from_entity: EntityType = Field(description="Entity type of the start.")
    from_id: Uuid = Field(description="Golden id of the start (person_id, case_id, ...).")
    to_entity: EntityType = Field(description="Entity type of the end.")
    to_id: Uuid = Field(description="Golden id of the end.")
    link_role: LinkRole = Field(
        LinkRole.OTHER,
        description="What the link says.",
        json_schema_extra={"htcds": "per_RoleInProcess"},
    )
    valid_from: date | None = Field(None, description="First day the relation held.")
    valid_to: date | None = Field(None, description="Last day the relation held.")


class SourceKey(ContractModel):
    avro_name: ClassVar[str] = f"{RECONCILED_NAMESPACE}.SourceKey"

    agency_id: str = Field(description="Agency of the record.")
    source_record_id: str = Field(description="The record's id in that agency.")


class MatchDecision(ContractModel):
    """Why entity resolution linked (or did not link) two source records."""

    avro_name: ClassVar[str] = f"{RECONCILED_NAMESPACE}.MatchDecision"

    left: SourceKey = Field(description="One record of the pair.")
    right: SourceKey = Field(description="The other record of the pair.")
    score: float = Field(description="Overall match score.")
    features: dict[str, float] = Field(
        {}, description="Per-field contribution to the score (name -> weight)."
    )
    rule: str = Field(description="Name of the rule or model version that decided.")
    decision: MatchOutcome = Field(
        MatchOutcome.REVIEW, description="MATCH, NON_MATCH or REVIEW (a human decides)."
    )
    decided_at: Timestamp = Field(description="When the decision was taken.")


RECONCILED_MODELS: dict[str, type[ContractModel]] = {
    "person": GoldenPerson,
    "case": GoldenCase,
    "report": GoldenReport,
    "organisation": GoldenOrganisation,
    "location": GoldenLocation,
    "link": GoldenLink,
    "match_decision": MatchDecision,
}
