"""Which reconciled entity goes to which table, column by column.

The migrations create these tables; this module says how a golden record's fields fill
them (by name: the column is the record field of the same name). Keep the two in step: a
column added here needs a migration that adds it there. Only what Avro cannot enforce is
checked (see ``sinks.records``); enum symbols are not repeated as CHECK constraints, so a
symbol added to the contract needs no migration.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sinks.records import (
    Column,
    EntityTable,
    RecordError,
    Row,
    check_date,
    check_uuid,
    required,
    to_json,
)

CLASSIFICATION = Column("classification", "text")
PARISH = Column("parish", "text")

PERSON = EntityTable(
    entity="person",
    table="person",
    id_column="person_id",
    has_lineage=True,
    columns=(
        Column("given_name", "text"),
        Column("middle_name", "text"),
        Column("family_name", "text"),
        Column("aliases", "text[]"),
        Column("date_of_birth", "date", check_date),
        Column("dob_precision", "text"),
        Column("date_of_birth_text", "text"),
        Column("sex", "text"),
        Column("citizenship", "text[]"),
        Column("identifiers", "jsonb"),
        Column("phones", "text[]"),
        Column("emails", "text[]"),
        Column("addresses", "jsonb"),
        CLASSIFICATION,
        Column("first_seen", "timestamptz"),
        Column("last_updated", "timestamptz"),
    ),
)

CASE = EntityTable(
    entity="case",
    table="case",
    id_column="case_id",
    columns=(
        Column("case_ref", "text", required()),
        Column("title", "text"),
        Column("status", "text"),
        Column("opened_on", "date", check_date),
        Column("closed_on", "date", check_date),
        Column("forms_of_exploitation", "text[]"),
        PARISH,
        Column("summary", "text"),
        CLASSIFICATION,
    ),
)

REPORT = EntityTable(
    entity="report",
    table="report",
    id_column="report_id",
    columns=(
        Column("channel", "text"),
        Column("received_at", "timestamptz"),
        Column("narrative", "text"),
        PARISH,
        Column("case_ref", "text"),
        CLASSIFICATION,
    ),
)

ORGANISATION = EntityTable(
    entity="organisation",
    table="organisation",
    id_column="organisation_id",
    columns=(
        Column("name", "text", required()),
        Column("aliases", "text[]"),
        Column("registration_number", "text"),
        Column("org_type", "text"),
        Column("industry", "text"),
        Column("addresses", "jsonb"),
        Column("phones", "text[]"),
        Column("emails", "text[]"),
        CLASSIFICATION,
    ),
)

LOCATION = EntityTable(
    entity="location",
    table="location",
    id_column="location_id",
    columns=(
        Column("name", "text"),
        Column("address", "text"),
        PARISH,
        Column("country", "text"),
        Column("latitude", "double precision"),
        Column("longitude", "double precision"),
        Column("location_role", "text"),
        CLASSIFICATION,
    ),
)

LINK = EntityTable(
    entity="link",
    table="link",
    id_column="link_id",
    columns=(
        Column("from_entity", "text", required()),
        Column("from_id", "uuid", required(check_uuid)),
        Column("to_entity", "text", required()),
        Column("to_id", "uuid", required(check_uuid)),
        Column("link_role", "text"),
        Column("valid_from", "date", check_date),
        Column("valid_to", "date", check_date),
        CLASSIFICATION,
    ),
)

ENTITY_TABLES: dict[str, EntityTable] = {
    table.entity: table for table in (PERSON, CASE, REPORT, ORGANISATION, LOCATION, LINK)
}


# --- match decisions: an append-only history, not golden records ------------------------------

MATCH_DECISION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("left_agency_id", "text"),
    ("left_source_record_id", "text"),
    ("right_agency_id", "text"),
    ("right_source_record_id", "text"),
    ("decided_at", "timestamptz"),
    ("score", "double precision"),
    ("features", "jsonb"),
    ("rule", "text"),
    ("decision", "text"),
)

def match_decision_row(record: Mapping[str, Any]) -> Row:
    """The row of one match decision, in MATCH_DECISION_COLUMNS order."""
    ends: list[str] = []
    for side in ("left", "right"):
        end = record.get(side)
        if not isinstance(end, Mapping):
            raise RecordError(f"field {side} is not a record with agency_id and source_record_id")
        for name in ("agency_id", "source_record_id"):
            value = end.get(name)
            if not isinstance(value, str):
                raise RecordError(f"field {side}.{name} is missing or not a string")
            ends.append(value)
    decided_at, score = record.get("decided_at"), record.get("score")
    if not isinstance(decided_at, datetime):
        raise RecordError("field decided_at is missing or not a timestamp")
    if isinstance(score, bool) or not isinstance(score, int | float) or score != score:
        raise RecordError("field score is missing or not a number")
    features = record.get("features") or {}
    if not isinstance(features, Mapping):
        raise RecordError("field features is not a map of names to weights")
    rule, decision = record.get("rule"), record.get("decision")
    if not isinstance(decision, str):
        raise RecordError("field decision is missing; the contract requires it")
    return (*ends, decided_at, float(score), to_json(dict(features), "features"),
            rule if isinstance(rule, str) else None, decision)
