"""Fuzzy person search for analysts: ``reconciled.search_person`` and a plain-text table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import psycopg


class SearchRefused(Exception):
    """The connection's role sees every row, so a search through it would ignore clearances."""


@dataclass(frozen=True)
class PersonMatch:
    person_id: str
    full_name: str
    aliases: list[str]
    date_of_birth: date | None
    dob_precision: str | None
    sex: str | None
    agencies: list[str]
    score: float


def require_analyst(connection: psycopg.Connection) -> None:
    """Refuse a role row-level security does not bind: a superuser, a role with BYPASSRLS,
    the schema's owner or the sink (``is_store_writer``, whose policy shows every row).
    Analysts search within their clearance; nobody searches as the owner."""
    row = connection.execute(
        "SELECT r.rolsuper OR r.rolbypassrls OR pg_has_role(current_user, n.nspowner, 'USAGE')"
        " OR coalesce(pg_has_role(current_user, to_regrole('tipsync_sink'), 'USAGE'), false)"
        " FROM pg_catalog.pg_roles AS r, pg_catalog.pg_namespace AS n"
        " WHERE r.rolname = current_user AND n.nspname = 'reconciled'"
    ).fetchone()
    if row is not None and row[0]:
        raise SearchRefused(
            f"role {connection.info.user} sees every row of the store (a superuser, the"
            " schema's owner or the sink), so its search would ignore clearances; search as an"
            " analyst: --connection FILE from `tipsync analyst add` (docs/ANALYSTS.md)"
        )


def search_person(
    connection: psycopg.Connection, name: str, dob: date | None = None
) -> list[PersonMatch]:
    """Best matches first, at most 50 (the SQL function decides the ranking), as the
    connection's role, which must be an analyst (``require_analyst``)."""
    require_analyst(connection)
    rows = connection.execute(
        "SELECT person_id, full_name, aliases, date_of_birth, dob_precision, sex, agencies,"
        " score FROM reconciled.search_person(%s, %s)",
        (name, dob),
    ).fetchall()
    return [
        PersonMatch(str(person_id), full_name or "", list(aliases or []), date_of_birth,
                    precision, sex, list(agencies or []), float(score))
        for person_id, full_name, aliases, date_of_birth, precision, sex, agencies, score in rows
    ]


def _shown_date(match: PersonMatch) -> str:
    # Show only what is known: a year-precision date of birth is a year, not 1 January.
    if match.date_of_birth is None:
        return ""
    text = match.date_of_birth.isoformat()
    return {"YEAR": text[:4], "MONTH": text[:7]}.get(match.dob_precision or "", text)


def format_table(matches: Sequence[PersonMatch]) -> str:
    """A ranked plain-text table with one line per person."""
    header = ("rank", "score", "name", "aliases", "born", "sex", "agencies", "person_id")
    lines = [
        (str(rank), f"{match.score:.3f}", match.full_name, "; ".join(match.aliases),
         _shown_date(match), match.sex or "", ", ".join(match.agencies), match.person_id)
        for rank, match in enumerate(matches, start=1)
    ]
    widths = [max(len(row[i]) for row in (header, *lines)) for i in range(len(header))]

    def render(row: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))

    separator = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), separator, *(render(row) for row in lines)]).rstrip()
