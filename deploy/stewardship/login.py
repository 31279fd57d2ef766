"""Who runs ``tipsync review``: a steward's own login to the store, never the owner's.

The review queue shows two people's names, dates of birth and identifiers side by side, so
the command reads as the steward, as the console does (``deploy.console.sessions``): row-level
security shows them only the pairs whose two records their clearance covers, and the persons
shown are recorded in the read audit (paths ``review_pair`` and ``review_split``, migration
0012). The login comes from the connection file ``tipsync analyst add NAME --steward ...
--out FILE`` wrote (``--connection FILE`` or ``config.STEWARD_CONNECTION``); it must be a
member of ``tipsync_steward``, and a role that row-level security does not bind (the owner,
a superuser, the sink) is refused. A decision names that login as its steward.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from deploy.operations.analysts import (
    ANALYST_GROUP,
    STEWARD_GROUP,
    AnalystError,
    read_connection_file,
    refuse_password_in,
)
from schemas import config
from sinks.search import SearchRefused, require_analyst

APPLICATION_NAME = "tipsync review"
HOW_TO_GET_ONE = (
    "an administrator makes a steward's login with `tipsync analyst add NAME --steward"
    " --clearance OFFICIAL|SENSITIVE|VICTIM_PROTECTED --out FILE`; then give --connection"
    f" FILE (or set {config.STEWARD_CONNECTION}=FILE)"
)


class StewardRefused(Exception):
    """The connection is not a steward's own; the message says why and how to get one."""


def steward_conninfo(connection_file: Path | None, database_url: str | None) -> str:
    """The steward's connection string: ``--database-url`` (a steward's URI), else the
    connection file (``--connection``, else ``config.STEWARD_CONNECTION``). Never the
    store's own URL, which is its owner's."""
    if database_url:
        try:
            refuse_password_in(database_url, "--database-url")
        except AnalystError as error:
            raise StewardRefused(str(error)) from None
        return database_url
    chosen = connection_file or config.steward_connection_file()
    if chosen is None:
        raise StewardRefused(
            "the review queue shows people's names and dates of birth, so it is read as a"
            " steward's own login, within their clearance and under the read audit, never as"
            f" the store's owner; no login was given: {HOW_TO_GET_ONE}"
        )
    try:
        return read_connection_file(chosen)
    except AnalystError as error:
        raise StewardRefused(str(error)) from None


def require_steward(connection: psycopg.Connection) -> str:
    """The login's name when it is a steward bound by row-level security; ``StewardRefused``
    otherwise (the owner, a superuser, the sink, a role that is not an analyst, an analyst
    who is not a steward)."""
    try:
        require_analyst(connection)
    except SearchRefused:
        raise StewardRefused(
            f"role {connection.info.user} sees every row of the store (the owner, a superuser"
            " or the sink): reviewing as it would show pairs beyond any clearance and record"
            f" no read; {HOW_TO_GET_ONE}"
        ) from None
    row = connection.execute(
        "SELECT session_user, pg_has_role(session_user, %s, 'MEMBER'),"
        " coalesce(pg_has_role(session_user, to_regrole(%s), 'MEMBER'), false)",
        (ANALYST_GROUP, STEWARD_GROUP),
    ).fetchone()
    if row is None or not row[1]:
        raise StewardRefused(
            f"role {connection.info.user} is not an analyst of the store, so it has no"
            f" clearance to review within; {HOW_TO_GET_ONE}")
    if not row[2]:
        raise StewardRefused(
            f"analyst {row[0]} is not a steward (not a member of {STEWARD_GROUP}), and only"
            f" stewards review pairs; an administrator makes {row[0]} one with GRANT"
            f" {STEWARD_GROUP} TO {row[0]}, or {HOW_TO_GET_ONE}")
    return str(row[0])


def connect_as_steward(conninfo: str) -> tuple[psycopg.Connection, str]:
    """An autocommit connection as the steward, and the steward's login name."""
    connection = psycopg.connect(conninfo, autocommit=True, connect_timeout=10,
                                 application_name=APPLICATION_NAME)
    try:
        return connection, require_steward(connection)
    except BaseException:
        connection.close()
        raise


# The keys (``<agency_id>:<source_record_id>``) the store holds that this steward may not see:
# held ones (migration 0012's function, with the owner's rights) less those the steward's own
# read of person_source returns.
_BEYOND_CLEARANCE = """
SELECT held.key FROM unnest(reconciled.held_person_sources(%s::text[])) AS held(key)
WHERE NOT EXISTS (
    SELECT 1 FROM reconciled.person_source AS s
    WHERE s.agency_id || ':' || s.source_record_id = held.key)
ORDER BY held.key
"""


def beyond_clearance(connection: psycopg.Connection, keys: list[str]) -> list[str]:
    """Which of ``keys`` name records the store holds that the steward may not see (a key
    the store does not hold yet may be decided about: the resolver applies the decision
    when the record arrives)."""
    return [str(key) for (key,) in connection.execute(_BEYOND_CLEARANCE, (keys,)).fetchall()]
