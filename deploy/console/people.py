"""What the search and person pages read, as the analyst's own role (pure queries, no web).

Every query runs on the session's connection, so row-level security decides what comes back,
and the person paths are recorded in ``reconciled.read_audit`` as migration 0007 records them:
``search_person`` (path ``search_person``), the person page's values (path
``person_overview``, through the same recorder the view calls) and ``person_lineage``;
pgaudit logs every table read besides.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from sinks.search import PersonMatch, search_person

MAX_QUERY_CHARACTERS = 200


class InputProblem(ValueError):
    """A search or an id the page cannot use; the message says what to type instead."""


def parse_search(name: str | None, dob: str | None) -> tuple[str, date | None]:
    """The name and date of birth of a search form, checked; ``InputProblem`` otherwise."""
    text = (name or "").strip()
    if len(text) > MAX_QUERY_CHARACTERS:
        raise InputProblem(f"the name is {len(text)} characters long; search with at most"
                           f" {MAX_QUERY_CHARACTERS}")
    born = None
    if dob and dob.strip():
        try:
            born = date.fromisoformat(dob.strip())
        except ValueError:
            raise InputProblem("the date of birth is not a date: type it as YYYY-MM-DD"
                               " (for example 1990-02-28), or leave it empty") from None
    return text, born


def parse_golden_id(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise InputProblem(f"'{text[:40]}' is not a golden person id (a UUID such as the"
                           " search page links to)") from None


def search(connection: psycopg.Connection, name: str, dob: date | None) -> list[PersonMatch]:
    return search_person(connection, name, dob) if name else []


@dataclass
class PersonPage:
    person: dict[str, Any]
    details: dict[str, Any]  # identifiers, phones, emails, addresses: in the same row
    lineage: list[dict[str, Any]]
    sources: list[dict[str, Any]]
    links: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    merged_ids: list[str] = field(default_factory=list)

    @property
    def agencies(self) -> list[str]:
        """The agencies that know the person, as far as this analyst may see."""
        return sorted({row["agency_id"] for row in self.sources if not row["deleted"]})


# The person's golden values, the read recorded as the view person_overview records it (same
# recorder, same path): the page shows more than the view holds (identifiers, phones, emails,
# addresses, the raw date of birth), and its links come from the query below.
_OVERVIEW = """
SELECT p.person_id, concat_ws(' ', p.given_name, p.middle_name, p.family_name) AS full_name,
       p.aliases, p.date_of_birth, p.dob_precision, p.sex, p.citizenship, p.classification,
       p.agencies, p.source_count, p.first_seen, p.last_updated, p.identifiers, p.phones,
       p.emails, p.addresses, p.date_of_birth_text,
       reconciled.record_person_read('person_overview', ARRAY[p.person_id]) AS read_recorded
FROM reconciled.person AS p WHERE p.person_id = %s
"""
_LINEAGE = """
SELECT field, agency_id, source_record_id, source_version, event_time
FROM reconciled.person_lineage WHERE person_id = %s
ORDER BY field, agency_id, source_record_id
"""
_MERGED = """
SELECT golden_id FROM reconciled.golden_record_state
WHERE entity = 'person' AND state = 'merged' AND merged_into = %s ORDER BY golden_id
"""
_SOURCES = """
SELECT agency_id, source_record_id, source_version, event_time, deleted
FROM reconciled.person_source WHERE person_id = ANY(%s)
ORDER BY agency_id, source_record_id
"""
# The other end of each link of the person (any of its ids), named by what the analyst may
# see of it; another person is named by id only (opening it is a read of its own).
_LINKS = """
WITH ends AS (
    SELECT l.link_id, l.link_role, l.valid_from, l.valid_to, l.agencies,
           CASE WHEN l.from_entity = 'PERSON' AND l.from_id = ANY(%(ids)s)
                THEN l.to_entity ELSE l.from_entity END AS entity,
           CASE WHEN l.from_entity = 'PERSON' AND l.from_id = ANY(%(ids)s)
                THEN l.to_id ELSE l.from_id END AS golden_id
    FROM reconciled.link AS l
    WHERE (l.from_entity = 'PERSON' AND l.from_id = ANY(%(ids)s))
       OR (l.to_entity = 'PERSON' AND l.to_id = ANY(%(ids)s))
)
SELECT e.*,
       CASE e.entity
           WHEN 'CASE' THEN (SELECT concat_ws(': ', c.case_ref, c.title) || coalesce(
                                        ' (' || c.status || ')', '')
                             FROM reconciled."case" AS c WHERE c.case_id = e.golden_id)
           WHEN 'ORGANISATION' THEN (SELECT o.name FROM reconciled.organisation AS o
                                     WHERE o.organisation_id = e.golden_id)
           WHEN 'LOCATION' THEN (SELECT concat_ws(', ', lo.name, lo.address, lo.parish)
                                 || coalesce(' (' || lo.location_role || ')', '')
                                 FROM reconciled.location AS lo
                                 WHERE lo.location_id = e.golden_id)
           WHEN 'REPORT' THEN (SELECT concat_ws(' ', r.channel, 'report',
                                                to_char(r.received_at, 'YYYY-MM-DD'))
                               FROM reconciled.report AS r WHERE r.report_id = e.golden_id)
           WHEN 'PERSON' THEN 'person ' || reconciled.resolve_person_id(e.golden_id)
       END AS label
FROM ends AS e
ORDER BY e.entity, label, e.link_role
"""
# Why the person's source records were linked: the latest decision about each pair of them.
_DECISIONS = """
WITH mine AS (
    SELECT agency_id, source_record_id FROM reconciled.person_source
    WHERE person_id = ANY(%s) AND NOT deleted
)
SELECT DISTINCT ON (d.left_agency_id, d.left_source_record_id, d.right_agency_id,
                    d.right_source_record_id)
       d.left_agency_id || ':' || d.left_source_record_id AS left_key,
       d.right_agency_id || ':' || d.right_source_record_id AS right_key,
       d.decided_at, d.score, d.features, d.rule, d.decision
FROM reconciled.match_decision AS d
WHERE (d.left_agency_id, d.left_source_record_id) IN (SELECT * FROM mine)
  AND (d.right_agency_id, d.right_source_record_id) IN (SELECT * FROM mine)
ORDER BY d.left_agency_id, d.left_source_record_id, d.right_agency_id,
         d.right_source_record_id, d.decided_at DESC
"""


def _rows(connection: psycopg.Connection, query: str, params: Any) -> list[dict[str, Any]]:
    with connection.cursor(row_factory=dict_row) as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def survivor_of(connection: psycopg.Connection, golden_id: str) -> str | None:
    """The live id a merged id stands for, when the analyst may see it; else None."""
    row = connection.execute(
        "SELECT reconciled.resolve_person_id(%s) FROM reconciled.golden_record_state"
        " WHERE entity = 'person' AND golden_id = %s AND state = 'merged'",
        (golden_id, golden_id),
    ).fetchone()
    return str(row[0]) if row and row[0] and str(row[0]) != golden_id else None


def person_page(connection: psycopg.Connection, golden_id: str) -> PersonPage | None:
    """Everything the person page shows, or None when the analyst may see no such person."""
    overview = _rows(connection, _OVERVIEW, (golden_id,))
    if not overview:
        return None
    merged = [str(row["golden_id"]) for row in _rows(connection, _MERGED, (golden_id,))]
    ids = [golden_id, *merged]
    decisions = _rows(connection, _DECISIONS, (ids,))
    for decision in decisions:
        decision["features"] = sorted((decision["features"] or {}).items(),
                                      key=lambda item: -abs(float(item[1] or 0)))
    return PersonPage(
        person=overview[0],
        details=overview[0],
        lineage=_rows(connection, _LINEAGE, (golden_id,)),
        sources=_rows(connection, _SOURCES, (ids,)),
        links=_rows(connection, _LINKS, {"ids": ids}),
        decisions=decisions,
        merged_ids=merged,
    )


def shown_date(value: date | None, precision: str | None) -> str:
    """A date of birth as precise as it is known: a YEAR is a year, not 1 January."""
    if value is None:
        return ""
    text = value.isoformat()
    return {"YEAR": text[:4], "MONTH": text[:7]}.get(precision or "", text)


def shown_time(value: datetime | None) -> str:
    """A moment to the minute, in UTC (the store's times are UTC; analysts work across
    agencies, so one zone for everyone)."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def shown_age(seconds: float | None) -> str:
    """A duration as people read it: 42 s, 5 min, 3 h, 266 days."""
    if seconds is None:
        return ""
    for limit, unit, size in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if abs(seconds) < limit:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds / 86400:.0f} days"
