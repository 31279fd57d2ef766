"""The canonical input columns of every entity: what a producer reads with no mapping file.

An agency whose export already uses these column names (CSV header or JSON Lines keys) needs
no mapping; every other export is translated onto them by ``producers.mapping``. The column
lists here are the single source for the mapping validator, the readers and the docs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum

from schemas.enums import (
    CaseStatus,
    ContractEnum,
    EntityType,
    FormOfExploitation,
    LinkRole,
    LocationRole,
    OrganisationType,
    ReportChannel,
    Sex,
)


class Entity(StrEnum):
    PERSON = "person"
    CASE = "case"
    REPORT = "report"
    ORGANISATION = "organisation"
    LOCATION = "location"
    LINK = "link"


ENTITY_COLUMNS: dict[Entity, tuple[str, ...]] = {
    Entity.PERSON: (
        "given_name", "middle_name", "family_name", "aliases", "date_of_birth", "sex",
        "citizenship", "trn", "nin", "passport_number", "passport_country", "phone", "email",
        "address", "parish", "role", "case_ref",
    ),
    Entity.CASE: (
        "case_ref", "title", "status", "opened_on", "closed_on", "forms_of_exploitation",
        "parish", "summary",
    ),
    Entity.REPORT: ("channel", "received_at", "narrative", "parish", "case_ref"),
    Entity.ORGANISATION: (
        "name", "aliases", "registration_number", "org_type", "industry", "address", "parish",
        "phone", "email",
    ),
    Entity.LOCATION: (
        "name", "address", "parish", "latitude", "longitude", "location_role",
    ),
    Entity.LINK: (
        "from_entity", "from_record_id", "to_entity", "to_record_id", "link_role",
        "valid_from", "valid_to",
    ),
}

# Columns holding a calendar date (a mapping may give strptime formats for them).
DATE_COLUMNS: frozenset[str] = frozenset(
    {"date_of_birth", "opened_on", "closed_on", "valid_from", "valid_to"}
)
# Columns holding an instant (date and time).
TIMESTAMP_COLUMNS: frozenset[str] = frozenset({"updated_at", "received_at"})

# Columns whose value is a ';'-separated list in CSV (or a JSON array in JSON Lines).
LIST_COLUMNS: frozenset[str] = frozenset(
    {"aliases", "citizenship", "phone", "email", "forms_of_exploitation"}
)

# Longest accepted value per column, in characters; anything longer is almost always a
# broken export (a whole file pasted into one cell) and would bloat every downstream copy.
DEFAULT_MAX_LENGTH = 500
MAX_LENGTH: dict[str, int] = {
    "narrative": 20_000,
    "summary": 20_000,
    "address": 1_000,
    "aliases": 2_000,
}


# No column allows fewer characters: a shorter value needs no look-up of its column's limit.
SHORTEST_MAX_LENGTH = min(DEFAULT_MAX_LENGTH, *MAX_LENGTH.values())


@functools.cache
def columns_of(entity: Entity) -> tuple[str, ...]:
    """All canonical columns of ``entity``, the identifying one first.

    Besides its own, every entity accepts ``updated_at``, ``deleted`` and ``source_version``
    (optional: an integer version counter kept by the agency's system; when absent the version
    comes from ``updated_at``, else from the producer's checkpoint, see producers.versions)."""
    own = ENTITY_COLUMNS[entity]
    return ("source_record_id", *own, "updated_at", "deleted", "source_version")


def max_length(column: str) -> int:
    return MAX_LENGTH.get(column, DEFAULT_MAX_LENGTH)


# Compared and hashed by identity (each vocabulary is one module constant), so that
# ``normalise.choice`` can memoise its answers per vocabulary.
@dataclass(frozen=True, eq=False)
class Choice:
    """The values accepted for a coded column, with the spellings that mean the same."""

    values: tuple[str, ...]
    synonyms: dict[str, str]

    def describe(self) -> str:
        return ", ".join(self.values)


def _symbols(vocabulary: type[ContractEnum], *left_out: str) -> tuple[str, ...]:
    """The contract's symbols of ``vocabulary``: the codes an agency may write are those the
    contract accepts, listed in one place. ``UNKNOWN`` is left out where an empty cell says it."""
    return tuple(symbol for symbol in vocabulary.symbols() if symbol not in left_out)


SEX = Choice(
    values=_symbols(Sex),
    synonyms={"F": "FEMALE", "M": "MALE", "X": "OTHER", "U": "UNKNOWN"},
)
# A person's role in a case: the link roles that a person can hold there.
PERSON_ROLE = Choice(
    values=tuple(
        role.value
        for role in (LinkRole.VICTIM, LinkRole.SUSPECT, LinkRole.WITNESS, LinkRole.REPORTER)
    ),
    synonyms={},
)
CASE_STATUS = Choice(values=_symbols(CaseStatus, "UNKNOWN"), synonyms={})
FORM_OF_EXPLOITATION = Choice(
    values=_symbols(FormOfExploitation), synonyms={"LABOR": "LABOUR"}
)
REPORT_CHANNEL = Choice(values=_symbols(ReportChannel), synonyms={})
ORG_TYPE = Choice(values=_symbols(OrganisationType), synonyms={})
LOCATION_ROLE = Choice(values=_symbols(LocationRole), synonyms={})
LINK_ROLE = Choice(values=_symbols(LinkRole), synonyms={})
# The ends of a link: the entities a link can join (a link does not point at a link).
ENTITY_NAME = Choice(values=_symbols(EntityType, "OTHER"), synonyms={})

CODED_COLUMNS: dict[tuple[Entity, str], Choice] = {
    (Entity.PERSON, "sex"): SEX,
    (Entity.PERSON, "role"): PERSON_ROLE,
    (Entity.CASE, "status"): CASE_STATUS,
    (Entity.CASE, "forms_of_exploitation"): FORM_OF_EXPLOITATION,
    (Entity.REPORT, "channel"): REPORT_CHANNEL,
    (Entity.ORGANISATION, "org_type"): ORG_TYPE,
    (Entity.LOCATION, "location_role"): LOCATION_ROLE,
    (Entity.LINK, "link_role"): LINK_ROLE,
    (Entity.LINK, "from_entity"): ENTITY_NAME,
    (Entity.LINK, "to_entity"): ENTITY_NAME,
}


# --- invalid values: leave the value out and flag it, or reject the row ----------------------


class OnInvalid(StrEnum):
    """What a value that cannot be normalised does to its row (a mapping file's
    ``on_invalid`` setting per column)."""

    KEEP = "keep"  # publish the record without the value, with a data-quality issue
    REJECT = "reject"  # reject the whole row (the agency wants strictness for this column)


# Columns without which a row is not an identifiable record (or not a change at all): a value
# there that cannot be read always rejects the row, whatever the mapping says. A person also
# needs one usable name (checked in producers.records).
CONTROL_COLUMNS: frozenset[str] = frozenset(
    {"source_record_id", "updated_at", "deleted", "source_version"}
)
IDENTIFYING_COLUMNS: dict[Entity, frozenset[str]] = {
    Entity.PERSON: frozenset(),
    Entity.CASE: frozenset({"case_ref"}),
    Entity.REPORT: frozenset(),
    Entity.ORGANISATION: frozenset({"name"}),
    Entity.LOCATION: frozenset(),
    Entity.LINK: frozenset(
        {"from_entity", "from_record_id", "to_entity", "to_record_id", "link_role"}
    ),
}
PERSON_NAME_COLUMNS: tuple[str, ...] = ("given_name", "middle_name", "family_name", "aliases")


def always_rejects(entity: Entity, column: str) -> bool:
    """Whether an unreadable value in ``column`` rejects the row whatever the policy."""
    return column in CONTROL_COLUMNS or column in IDENTIFYING_COLUMNS[entity]


@dataclass(frozen=True)
class InvalidValuePolicy:
    """Per column, whether an invalid value is left out and flagged or rejects the row."""

    columns: tuple[tuple[str, OnInvalid], ...] = ()
    default: OnInvalid = OnInvalid.KEEP

    def keeps(self, entity: Entity, column: str) -> bool:
        if always_rejects(entity, column):
            return False
        return dict(self.columns).get(column, self.default) is OnInvalid.KEEP


KEEP_INVALID = InvalidValuePolicy()
