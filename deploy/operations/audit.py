"""The analysts' read audit, as the data protection officer reads it (``tipsync audit``).

Two sources (docs/ANALYSTS.md, *The read audit*):

- **person reads**: ``reconciled.read_audit``, one row per person that ``search_person``, a
  person view (``person_overview``, ``case_people``, ``person_lineage``) or a steward's
  review (``review_pair``, ``review_split``) gave an analyst's statement; the recorder also
  writes each to the server log (``tipsync read: ...``), so a read whose transaction was
  rolled back is found there alone;
- **statement reads**: pgaudit's object audit in the server log (``AUDIT: OBJECT,...``): each
  analyst statement that read tables or views of the store, with the objects and the rows
  it returned, never its text.

The server log is PostgreSQL's ``jsonlog`` (one JSON object per line) in the data folder's
``log/``, readable by the server's user only (and root). Parsing is pure (``parse_server_log``);
reading the table and the files is the thin shell around it.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from deploy.stack.read_audit import AUDITOR_ROLE

PERSON_PATHS = ("search_person", "person_overview", "case_people", "person_lineage",
                "review_pair", "review_split")
# The stewards' paths (migration 0012): what `tipsync review` and the console's review pages
# showed, by what the steward was doing rather than the view the query read.
REVIEW_PATHS = {"review_pair": "review pair (side by side)",
                "review_split": "review split (sources)"}
READ_LINE = re.compile(
    r"^tipsync read: at=(?P<at>\S+) path=(?P<path>[a-z_]+) person=(?P<person>[0-9a-f-]{36})$"
)
PGAUDIT_PREFIX = "AUDIT: OBJECT,"


class AuditError(Exception):
    """The audit cannot be read; the message says which source and what to do."""


@dataclass(frozen=True)
class Filters:
    analyst: str | None = None
    person_id: str | None = None
    since: datetime | None = None
    database: str | None = None  # the store's database; the server log holds every one

    def keeps(self, at: datetime, analyst: str, person_id: str | None) -> bool:
        return ((self.analyst is None or analyst == self.analyst)
                and (self.person_id is None or person_id == self.person_id)
                and (self.since is None or at >= self.since))


@dataclass(frozen=True)
class AuditEntry:
    """One read. A person read names the person and the path; a statement read names the
    objects (tables, views) one statement read and how many rows it returned."""

    at: datetime
    analyst: str
    through: str  # search_person() | view reconciled.X | table reconciled.X
    person_id: str | None
    objects: tuple[str, ...]
    rows: int | None
    # "store" (reconciled.read_audit), "server log" (pgaudit), or "server log only" (a
    # person read whose transaction was rolled back: the analyst still saw the rows).
    recorded_in: str

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        data["objects"] = list(self.objects)
        return data


def person_path(path: str) -> str:
    if path in REVIEW_PATHS:
        return REVIEW_PATHS[path]
    return "search_person()" if path == "search_person" else f"view reconciled.{path}"


# --------------------------------------------------------------------------- pure parts


def parse_since(text: str) -> datetime:
    """``2026-12-01`` or ``2026-12-01T08:00`` (UTC unless an offset is given)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise AuditError(
            f"--since '{text}' is not a date or time; give e.g. 2026-12-01 or"
            " 2026-12-01T08:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _log_time(text: str) -> datetime:
    # jsonlog writes "2026-12-06 05:08:36.372 UTC" (the stack sets log_timezone to UTC).
    stamp, _, zone = text.rpartition(" ")
    if zone != "UTC":
        raise AuditError(f"server log time '{text}' is not in UTC; set log_timezone = 'UTC'")
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)


@dataclass(frozen=True)
class LoggedPersonRead:
    key: tuple[int, datetime, str, str]  # backend pid, statement time, path, person
    analyst: str
    database: str


class _Statement:
    """The pgaudit lines of one statement: one per object and substatement (a view and the
    tables it reads; the tables the functions of the row-level security policies read,
    while PostgreSQL plans and runs the statement, each a substatement of their own).
    Nothing in them tells which object the analyst named, but for views: a statement that
    read a view went through it."""

    def __init__(self, at: datetime, analyst: str) -> None:
        self.at, self.analyst = at, analyst
        self.views: list[str] = []
        self.objects: list[str] = []
        self.rows: int | None = None
        self.view_rows: int | None = None

    def add(self, object_type: str, name: str, rows: str) -> None:
        if name not in self.objects:
            self.objects.append(name)
        count = int(rows) if rows.isdigit() else None
        if object_type == "VIEW" and name not in self.views:
            if not self.views:
                self.view_rows = count
            self.views.append(name)
        if count is not None and (self.rows is None or count > self.rows):
            self.rows = count

    def entry(self) -> AuditEntry:
        if self.views:
            through, rows = f"view {self.views[0]}", self.view_rows
        else:
            through = ("table " if len(self.objects) == 1 else "tables ") + ", ".join(
                self.objects)
            rows = self.rows
        return AuditEntry(self.at, self.analyst, through, None, tuple(self.objects), rows,
                          "server log")


def parse_server_log(lines: Iterable[str], filters: Filters,
                     ) -> tuple[list[AuditEntry], list[LoggedPersonRead]]:
    """Statement reads (pgaudit) and person reads (the recorder's lines) of the store's
    database in jsonlog ``lines``; other lines, whatever they hold, are skipped unread."""
    statements: dict[tuple[int, str, str], _Statement] = {}
    person_reads: list[LoggedPersonRead] = []
    for line in lines:
        if PGAUDIT_PREFIX not in line and "tipsync read: " not in line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash mid-write
        message = str(record.get("message", ""))
        analyst = str(record.get("user", ""))
        database = str(record.get("dbname", ""))
        if filters.database is not None and database != filters.database:
            continue
        pid = int(record.get("pid", 0))
        if message.startswith(PGAUDIT_PREFIX):
            fields = next(csv.reader([message.removeprefix("AUDIT: ")]))
            if len(fields) < 10 or fields[3] != "READ":
                continue
            _, statement_id, _, _, _, object_type, object_name, *_, rows = fields
            key = (pid, str(record.get("session_id", "")), statement_id)
            statement = statements.setdefault(key, _Statement(
                _log_time(str(record["timestamp"])), analyst))
            statement.add(object_type, object_name, rows)
            continue
        match = READ_LINE.match(message)
        if match:
            at = datetime.fromisoformat(match["at"].replace("Z", "+00:00"))
            person_reads.append(LoggedPersonRead(
                (pid, at, match["path"], match["person"]), analyst, database))
    entries = [statement.entry() for statement in statements.values()
               if filters.person_id is None
               and filters.keeps(statement.at, statement.analyst, None)]
    return entries, person_reads


def merge(stored: Iterable[tuple[int, datetime, str, str, str]],
          logged: Iterable[LoggedPersonRead], statements: Iterable[AuditEntry],
          filters: Filters) -> list[AuditEntry]:
    """The store's person reads, the logged ones the store lacks (rolled back), and the
    statement reads, oldest first."""
    entries: list[AuditEntry] = []
    seen = set()
    for pid, at, analyst, path, person_id in stored:
        seen.add((pid, at, path, person_id))
        if filters.keeps(at, analyst, person_id):
            entries.append(AuditEntry(at, analyst, person_path(path), person_id, (), None,
                                      "store"))
    for read in logged:
        pid, at, path, person_id = read.key
        if read.key not in seen and filters.keeps(at, read.analyst, person_id):
            seen.add(read.key)
            entries.append(AuditEntry(at, read.analyst, person_path(path), person_id, (),
                                      None, "server log only"))
    entries.extend(statements)
    return sorted(entries, key=lambda entry: (entry.at, entry.analyst, entry.through,
                                              entry.person_id or ""))


# --------------------------------------------------------------------------- I/O parts


def server_log_lines(folder: Path) -> Iterator[str]:
    """Every line of the jsonlog files in ``folder``, oldest file first."""
    try:
        files = sorted(folder.glob("*.json"))
    except PermissionError:
        files = None
    if files is None or not folder.is_dir():
        raise AuditError(
            f"cannot read the server log folder {folder}: it is the PostgreSQL server's own"
            " (mode 0700); run tipsync audit as root or as the server's user, or give"
            " --server-log with a copy of its *.json files"
        )
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as log:
                yield from log
        except PermissionError:
            raise AuditError(
                f"cannot read the server log {path}; run tipsync audit as root or as the"
                " server's user"
            ) from None


def stored_person_reads(admin: str, filters: Filters,
                        ) -> list[tuple[int, datetime, str, str, str]]:
    """(backend pid, statement time, analyst, path, person id) rows of
    ``reconciled.read_audit``; every row when unfiltered (the log lines need them all to
    tell a rolled-back read)."""
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as connection:
            rows = connection.execute(
                "SELECT backend_pid, read_at, analyst::text, path, person_id::text"
                " FROM reconciled.read_audit"
                " WHERE (%(since)s::timestamptz IS NULL OR read_at >= %(since)s)"
                " ORDER BY read_at, read_id",
                {"since": filters.since},
            ).fetchall()
    except psycopg.errors.UndefinedTable:
        raise AuditError(
            "this database has no reconciled.read_audit yet; run `tipsync db migrate`"
        ) from None
    except psycopg.OperationalError as error:
        raise AuditError(
            f"cannot connect as the administrator ({str(error).strip()}); on the local stack"
            " check `tipsync stack status`, elsewhere give --admin-url"
        ) from None
    return [(int(pid), at, analyst, path, person) for pid, at, analyst, path, person in rows]


def read_audit(admin: str, server_log: Path, filters: Filters) -> list[AuditEntry]:
    statements, logged = parse_server_log(server_log_lines(server_log), filters)
    return merge(stored_person_reads(admin, filters), logged, statements, filters)


def unaudited_analysts(admin: str) -> list[str]:
    """Analysts whose statements pgaudit does not record: logins of the analyst group
    without ``pgaudit.role`` set on their role (made by hand, or before the read audit)."""
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as connection:
            rows = connection.execute(
                """
                SELECT r.rolname::text
                FROM pg_auth_members AS m
                JOIN pg_roles AS r ON r.oid = m.member
                WHERE m.roleid = to_regrole('tipsync_analyst') AND NOT m.admin_option
                  AND r.rolcanlogin
                  AND NOT EXISTS (
                      SELECT FROM pg_db_role_setting AS s, unnest(s.setconfig) AS setting
                      WHERE s.setrole = r.oid AND s.setdatabase = 0
                        AND setting = 'pgaudit.role=' || %s)
                ORDER BY 1
                """,
                (AUDITOR_ROLE,),
            ).fetchall()
    except psycopg.OperationalError as error:
        raise AuditError(f"cannot connect as the administrator ({str(error).strip()})") from None
    return [name for (name,) in rows]


# --------------------------------------------------------------------------- analysts


def read_audit_problem(connection: psycopg.Connection) -> str | None:
    """Why an analyst's reads would not be audited on this server, or None."""
    loaded = connection.execute(
        "SELECT EXISTS (SELECT FROM pg_settings WHERE name = 'pgaudit.role'),"
        " EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", (AUDITOR_ROLE,)
    ).fetchone()
    if not loaded or not loaded[0]:
        return ("pgaudit is not loaded on this server, so an analyst's reads would not be"
                " audited; add shared_preload_libraries = 'pgaudit' (Debian package"
                " postgresql-15-pgaudit) and restart it (`tipsync stack up` does both on the"
                " local stack)")
    if not loaded[1]:
        return (f"the role {AUDITOR_ROLE} does not exist, so an analyst's reads would not be"
                f" audited; a superuser creates it: CREATE ROLE {AUDITOR_ROLE} NOLOGIN;")
    return None


def audit_statements_of(connection: psycopg.Connection, name: str) -> None:
    """Switch pgaudit's object audit on for ``name``'s sessions. pgaudit's settings are not
    inherited from a group, so every analyst gets it on their own role; only a superuser
    (or a role granted SET on the parameter) may set it, so the analyst cannot unset it."""
    from psycopg import sql

    connection.execute(
        sql.SQL("ALTER ROLE {} SET pgaudit.role = {}").format(
            sql.Identifier(name), sql.Literal(AUDITOR_ROLE))
    )
