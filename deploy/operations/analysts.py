"""Analysts as people: a PostgreSQL login per analyst, with a clearance (``tipsync analyst``).

An analyst is a login role in the group ``tipsync_analyst`` (never the owner, never more) and
a row of ``reconciled.analyst_clearance`` (clearance, agencies) in the store's database; the
row-level security policies of migration 0005 read that row. Creating a role needs CREATEROLE,
so these functions run on an administrator's connection (``tipsync_admin`` on the local
stack); writing the clearance row needs rights on that table (the local admin is superuser).

The generated password leaves this process in two places only: the analyst's passfile (mode
0600) and, as a SCRAM-SHA-256 verifier (not the password), the ``CREATE ROLE`` statement. It
is never printed, logged or put on a command line; the connection URI names the passfile.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from deploy.operations.audit import audit_statements_of, read_audit_problem
from deploy.stack.scram import scram_verifier

ANALYST_GROUP = "tipsync_analyst"
# Analysts who may decide review pairs, in the console and with ``tipsync review`` (``analyst
# add --steward``). A marker only: it grants nothing in the database; the console, the
# command and reconciled.held_person_sources (migration 0012) read the membership.
STEWARD_GROUP = "tipsync_steward"
ADMIN_ROLE = "tipsync_admin"
CLEARANCES = ("OFFICIAL", "SENSITIVE", "VICTIM_PROTECTED")
# Roles an analyst name may never be (and that ``remove`` must never drop).
RESERVED_NAMES = frozenset(
    {"tipsync", ADMIN_ROLE, ANALYST_GROUP, STEWARD_GROUP, "tipsync_sink", "apicurio",
     "postgres", "public"}
)
NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
AGENCY = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
# Connection settings of the store's URL an analyst's URI keeps: where the server is and how
# to trust it; never the owner's user, password, passfile or client certificate.
KEPT_SETTINGS = ("host", "hostaddr", "port", "dbname", "sslmode", "sslrootcert", "sslcrl",
                 "connect_timeout", "target_session_attrs")


class AnalystError(Exception):
    """An analyst cannot be added, listed or removed; the message says why and what to do."""


@dataclass(frozen=True)
class Analyst:
    name: str
    clearance: str | None  # None: a member of the group without a clearance (sees nothing)
    agencies: tuple[str, ...] | None  # None: every agency
    can_login: bool
    granted_at: datetime | None
    steward: bool = False


@dataclass(frozen=True)
class ConnectionFiles:
    uri_file: Path
    passfile: Path


# --------------------------------------------------------------------------- pure parts


def check_name(name: str) -> str:
    if not NAME.match(name) or name in RESERVED_NAMES or name.startswith("pg_"):
        raise AnalystError(
            f"'{name}' cannot be an analyst's login: use lower-case letters, digits and _ (up"
            " to 63, not starting with a digit or pg_), and not a role of tipsync itself"
            f" ({', '.join(sorted(RESERVED_NAMES))})"
        )
    return name


def parse_agencies(text: str | None) -> tuple[str, ...] | None:
    """``police-ctu,immigration`` -> sorted unique ids; None (or empty) means every agency."""
    if text is None:
        return None
    agencies = sorted({part.strip() for part in text.split(",") if part.strip()})
    if not agencies:
        raise AnalystError("--agencies names no agency; leave it out for every agency")
    for agency in agencies:
        if not AGENCY.match(agency):
            raise AnalystError(f"'{agency}' is not an agency id (see deploy/agencies.yaml)")
    return tuple(agencies)


def _passfile_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def passfile_line(role: str, password: str) -> str:
    """One libpq password file line for ``role`` on any host, port and database."""
    return f"*:*:*:{_passfile_field(role)}:{_passfile_field(password)}\n"


def analyst_uri(database_url: str, role: str, passfile: Path) -> str:
    """A ``postgresql://`` URI of the store's server and database for ``role``, its password
    in ``passfile`` (an absolute path: libpq reads a relative one from the current folder)."""
    params = conninfo_to_dict(database_url)
    host = str(params.get("host") or "")
    port = str(params.get("port") or "")
    dbname = str(params.get("dbname") or "")
    authority = quote(role, safe="") + "@" + (f"[{host}]" if ":" in host else quote(host, safe=""))
    if port:
        authority += f":{quote(port, safe='')}"
    query = [("passfile", str(passfile.resolve()))]
    query += [(key, str(params[key])) for key in KEPT_SETTINGS
              if key not in ("host", "port", "dbname") and params.get(key)]
    encoded = "&".join(f"{key}={quote(value, safe='/')}" for key, value in query)
    return f"postgresql://{authority}/{quote(dbname, safe='')}?{encoded}"


def admin_conninfo(database_url: str, pgpass: Path) -> str:
    """The local stack's administrator on the store's server and database, password from the
    stack's pgpass (as ``deploy/stack/services.py`` connects)."""
    params = {key: value for key, value in conninfo_to_dict(database_url).items()
              if key in KEPT_SETTINGS}
    return make_conninfo("", **params, user=ADMIN_ROLE, passfile=str(pgpass))


def refuse_password_in(conninfo: str, what: str) -> None:
    """A connection string must name a passfile, not carry a password (logs show URLs)."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as error:
        raise AnalystError(f"{what} is not a libpq connection string or URI ({error})") from None
    if params.get("password"):
        raise AnalystError(
            f"{what} carries a password, where logs and shell history would keep it; put it in"
            " a password file (mode 0600) and name it with passfile=... instead"
        )


def read_connection_file(path: Path) -> str:
    """The connection URI in a file ``tipsync analyst add`` wrote (the first line that is not
    blank or a ``#`` comment); refused when it carries a password."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise AnalystError(f"cannot read the connection file {path}: {error.strerror}") from None
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise AnalystError(f"the connection file {path} holds no connection URI")
    refuse_password_in(lines[0], f"the connection file {path}")
    return lines[0]


def write_private(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 and ``text``; an existing file is never overwritten."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, text.encode("utf-8"))
    finally:
        os.close(descriptor)


def is_private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def connection_files(out: Path) -> ConnectionFiles:
    """The URI file the user named and its passfile beside it (``<FILE>.pgpass``)."""
    out = out.expanduser().resolve()
    return ConnectionFiles(out, out.with_name(out.name + ".pgpass"))


# --------------------------------------------------------------------------- database parts


def _admin(conninfo: str) -> psycopg.Connection:
    try:
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as error:
        raise AnalystError(
            f"cannot connect as the administrator ({str(error).strip()}); on the local stack"
            " check `tipsync stack status`, elsewhere give --admin-url"
        ) from None


def _require_store(connection: psycopg.Connection) -> None:
    row = connection.execute(
        "SELECT to_regclass('reconciled.analyst_clearance') IS NOT NULL"
    ).fetchone()
    if not (row and row[0]):
        raise AnalystError(
            "this database has no reconciled.analyst_clearance yet; run `tipsync db migrate`"
        )


def add_analyst(admin: str, database_url: str, name: str, clearance: str,
                agencies: Sequence[str] | None, out: Path,
                steward: bool = False) -> ConnectionFiles:
    """Create ``name``'s login in the analyst group with ``clearance`` (and, with
    ``steward``, in the stewards' group, made the first time) and write its URI and
    passfile (both 0600, refused if either exists). Nothing is left behind on failure."""
    check_name(name)
    if clearance not in CLEARANCES:
        raise AnalystError(f"clearance {clearance} is none of {', '.join(CLEARANCES)}")
    files = connection_files(out)
    for path in (files.uri_file, files.passfile):
        if path.exists():
            raise AnalystError(f"{path} exists; choose another --out or remove it first")
    password = secrets.token_urlsafe(32)
    with _admin(admin) as connection:
        _require_store(connection)
        problem = read_audit_problem(connection)
        if problem:
            raise AnalystError(problem)
        if connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
            raise AnalystError(f"a role {name} exists already; choose another name")
        write_private(files.passfile, passfile_line(name, password))
        try:
            write_private(files.uri_file, analyst_uri(database_url, name, files.passfile) + "\n")
            with connection.transaction():
                role = sql.Identifier(name)
                connection.execute(
                    sql.SQL(
                        "CREATE ROLE {} LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE"
                        " NOREPLICATION NOBYPASSRLS PASSWORD {} IN ROLE {}"
                    ).format(role, sql.Literal(scram_verifier(password)),
                             sql.Identifier(ANALYST_GROUP))
                )
                connection.execute(
                    sql.SQL("ALTER ROLE {} SET search_path = reconciled, public").format(role)
                )
                audit_statements_of(connection, name)
                if steward:
                    _grant_steward(connection, role)
                # A row left by an earlier role of the same name is replaced.
                connection.execute(
                    "INSERT INTO reconciled.analyst_clearance (role_name, clearance, agencies)"
                    " VALUES (%s, %s, %s) ON CONFLICT (role_name) DO UPDATE SET"
                    " clearance = excluded.clearance, agencies = excluded.agencies,"
                    " granted_at = now(), granted_by = current_user",
                    (name, clearance, list(agencies) if agencies else None),
                )
        except BaseException:
            files.uri_file.unlink(missing_ok=True)
            files.passfile.unlink(missing_ok=True)
            raise
    return files


def _grant_steward(connection: psycopg.Connection, role: sql.Identifier) -> None:
    group = sql.Identifier(STEWARD_GROUP)
    if not connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                              (STEWARD_GROUP,)).fetchone():
        connection.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(group))
    connection.execute(sql.SQL("GRANT {} TO {}").format(group, role))


def list_analysts(admin: str) -> list[Analyst]:
    """Every member of the analyst group (but the roles that administer it) and every
    clearance row, by name."""
    with _admin(admin) as connection:
        _require_store(connection)
        rows = connection.execute(
            """
            WITH members AS (
                SELECT r.rolname, r.rolcanlogin
                FROM pg_auth_members AS m
                JOIN pg_roles AS r ON r.oid = m.member
                WHERE m.roleid = to_regrole(%s) AND NOT m.admin_option
            )
            SELECT coalesce(m.rolname, c.role_name), c.clearance, c.agencies,
                   coalesce(m.rolcanlogin, false), c.granted_at,
                   m.rolname IS NOT NULL AND coalesce(pg_has_role(
                       m.rolname, to_regrole(%s), 'MEMBER'), false)
            FROM members AS m
            FULL JOIN reconciled.analyst_clearance AS c ON c.role_name = m.rolname
            ORDER BY 1
            """,
            (ANALYST_GROUP, STEWARD_GROUP),
        ).fetchall()
    return [
        Analyst(str(name), clearance, tuple(agencies) if agencies is not None else None,
                bool(can_login), granted_at, bool(steward))
        for name, clearance, agencies, can_login, granted_at, steward in rows
    ]


def remove_analyst(admin: str, name: str) -> bool:
    """Drop ``name``'s login, end its open sessions and delete its clearance; False when
    there was neither a role nor a clearance. Refuses any role that is not a plain analyst."""
    check_name(name)
    with _admin(admin) as connection:
        _require_store(connection)
        role = connection.execute(
            """
            SELECT r.rolsuper OR r.rolcreaterole OR r.rolbypassrls OR r.rolreplication,
                   EXISTS (SELECT 1 FROM pg_auth_members AS m
                           WHERE m.member = r.oid AND m.roleid = to_regrole(%s)
                             AND NOT m.admin_option)
            FROM pg_roles AS r WHERE r.rolname = %s
            """,
            (ANALYST_GROUP, name),
        ).fetchone()
        if role is not None:
            privileged, analyst = role
            if privileged or not analyst:
                raise AnalystError(
                    f"role {name} is not an analyst (not a plain member of {ANALYST_GROUP});"
                    " tipsync analyst remove drops analysts only"
                )
            identifier = sql.Identifier(name)
            # No new session from here on; then end those already open, then drop.
            connection.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(identifier))
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (name,),
            )
        with connection.transaction():
            deleted = connection.execute(
                "DELETE FROM reconciled.analyst_clearance WHERE role_name = %s", (name,)
            ).rowcount
            if role is not None:
                connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
    return role is not None or deleted > 0
