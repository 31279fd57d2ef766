"""Which reconciled entity goes to which table, column by column.

The migrations create these tables; this module says how a golden record's fields fill
them. Keep the two in step: a column added here needs a migration that adds it there.
"""

from __future__ import annotations

from schemas.enums import DatePrecision, Sex
from sinks.records import (
    Column,
    EntityTable,
    to_date,
    to_enum,
    to_json,
    to_text,
    to_text_list,
    to_timestamp,
)


def _to_json_list(value: object, field: str) -> str:
    return to_json([] if value is None else value, field)


PERSON = EntityTable(
    entity="person",
    table="person",
    id_column="person_id",
    has_lineage=True,
    columns=(
        Column("given_name", "text", to_text),
        Column("middle_name", "text", to_text),
        Column("family_name", "text", to_text),
        Column("aliases", "text[]", to_text_list),
        Column("date_of_birth", "date", to_date),
        Column("dob_precision", "text", to_enum(DatePrecision.symbols())),
        Column("sex", "text", to_enum(Sex.symbols())),
        Column("citizenship", "text[]", to_text_list),
        Column("identifiers", "jsonb", _to_json_list),
        Column("phones", "text[]", to_text_list),
        Column("emails", "text[]", to_text_list),
        Column("addresses", "jsonb", _to_json_list),
        Column("classification", "text", to_text),
        Column("first_seen", "timestamptz", to_timestamp),
        Column("last_updated", "timestamptz", to_timestamp),
    ),
)


ENTITY_TABLES: dict[str, EntityTable] = {table.entity: table for table in (PERSON,)}
