"""Versioned SQL migrations of the reconciled store.

The files in ``sinks/migrations/`` are applied in version order, each in its own
transaction together with its row in ``reconciled.schema_migrations`` (version, name,
checksum, applied_at). A released file is never edited: when a recorded checksum no longer
matches its file, the runner refuses to run and says which file changed.

``plan_migrations`` is the pure decision (what to apply, or why not); ``migrate`` is the thin
shell that reads the table, takes a lock so two runs starting together do not race, and
applies the plan. Migrations run as the schema's owner (``tipsync db migrate``, which
``tipsync stack up`` and the demo run too), never as the sink: the sink's role may not
create or alter anything, so on start it only checks, with ``require_migrated``, that the
store is at the version its code expects.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable

import psycopg

SCHEMA = "reconciled"
MIGRATIONS_TABLE = f"{SCHEMA}.schema_migrations"
FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same for every tipsync process.
ADVISORY_LOCK_KEY = 0x7469_7073_796E_63  # "tipsync" in hex, fits a bigint


class MigrationError(Exception):
    """The migrations cannot be applied; the message says which file and what to do."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str = field(repr=False)
    checksum: str = field(repr=False)

    @property
    def file_name(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str


def checksum_of(sql: str) -> str:
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


def parse_migrations(files: Iterable[tuple[str, str]]) -> list[Migration]:
    """Migrations from ``(file name, SQL text)`` pairs, sorted by version.

    Files that are not ``.sql`` are ignored (the package's ``__init__.py``); an ``.sql`` file
    with a malformed name or a duplicate version is an error, since it would otherwise be
    silently skipped or applied in an order nobody chose.
    """
    by_version: dict[int, Migration] = {}
    for file_name, sql in files:
        if not file_name.endswith(".sql"):
            continue
        match = FILE_NAME.match(file_name)
        if not match:
            raise MigrationError(
                f"migration file {file_name}: the name does not follow NNNN_lower_case_words.sql;"
                " rename it (for example 0007_add_case_index.sql)"
            )
        version = int(match["version"])
        if version in by_version:
            raise MigrationError(
                f"migration files {by_version[version].file_name} and {file_name} share version"
                f" {version:04d}; give the newer one the next free number"
            )
        by_version[version] = Migration(version, match["name"], sql, checksum_of(sql))
    return [by_version[version] for version in sorted(by_version)]


def plan_migrations(
    available: list[Migration], applied: Mapping[int, AppliedMigration]
) -> list[Migration]:
    """The migrations still to apply, in order; an error if the history does not add up."""
    known = {migration.version: migration for migration in available}
    for version, record in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version:04d}_{record.name} applied, which this"
                " version of tipsync does not ship; run a tipsync release that includes it"
            )
        if migration.checksum != record.checksum:
            raise MigrationError(
                f"migration {migration.file_name} was edited after it was applied to this"
                f" database (checksum recorded {record.checksum[:12]}…, file now"
                f" {migration.checksum[:12]}…); released migrations are never edited — restore"
                " the file and put the change in a new migration with the next number"
            )
    return [migration for migration in available if migration.version not in applied]


def shipped_migrations() -> list[Migration]:
    """The migrations packaged with this code."""
    folder: Traversable = resources.files("sinks") / "migrations"
    # Only the SQL files are read: an installed package also holds ``__pycache__/`` (pip
    # compiles ``__init__.py``), a folder whose text cannot be read.
    return parse_migrations(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir() if entry.name.endswith(".sql") and entry.is_file()
    )


def migrate(conninfo: str, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply every pending migration to the database at ``conninfo``; return those applied."""
    migrations = shipped_migrations() if migrations is None else migrations
    with psycopg.connect(conninfo, autocommit=True) as connection:
        # A session lock, held while each migration commits in its own transaction.
        connection.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        try:
            applied = _applied_migrations(connection)
            pending = plan_migrations(migrations, applied)
            for migration in pending:
                _apply(connection, migration)
            return pending
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))


def require_migrated(conninfo: str, migrations: list[Migration] | None = None) -> None:
    """Refuse (``MigrationError``) unless every migration this code ships is applied to the
    database at ``conninfo``, unedited; read-only, so the sink's role can run it."""
    migrations = shipped_migrations() if migrations is None else migrations
    with psycopg.connect(conninfo, connect_timeout=10) as connection:
        where = _describe(connection)
        try:
            rows = connection.execute(
                f"SELECT version, name, checksum FROM {MIGRATIONS_TABLE}"
            ).fetchall()
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            raise MigrationError(
                f"{where} has no reconciled store yet; run `tipsync db migrate` (as the"
                " database owner) before starting the sink"
            ) from None
        except psycopg.errors.InsufficientPrivilege:
            raise MigrationError(
                f"role {connection.info.user} may not read {MIGRATIONS_TABLE} in {where}:"
                " the store's migrations are behind this code (the sink_role migration grants"
                " the sink's role its rights) or this is not the sink's role; run `tipsync db"
                " migrate` as the database owner, then start the sink again"
            ) from None
    applied = {version: AppliedMigration(version, name, checksum)
               for version, name, checksum in rows}
    pending = plan_migrations(migrations, applied)
    if pending:
        raise MigrationError(
            f"{where} lacks {len(pending)} migration(s) this code needs"
            f" ({', '.join(m.file_name for m in pending)}); run `tipsync db migrate` (as the"
            " database owner), then start the sink again"
        )


def _describe(connection: psycopg.Connection) -> str:
    info = connection.info
    return f"database {info.dbname} on {info.host}:{info.port}"


def _applied_migrations(connection: psycopg.Connection) -> dict[int, AppliedMigration]:
    exists = connection.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (MIGRATIONS_TABLE,)
    ).fetchone()
    if not (exists and exists[0]):
        try:
            with connection.transaction():
                connection.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                connection.execute(
                    f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
                        version    integer     PRIMARY KEY,
                        name       text        NOT NULL,
                        checksum   text        NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now()
                    )"""
                )
        except psycopg.errors.InsufficientPrivilege as error:
            raise MigrationError(
                f"cannot create schema {SCHEMA} in this database ({error.diag.message_primary});"
                " run `tipsync db migrate` once as the database owner"
            ) from error
    rows = connection.execute(f"SELECT version, name, checksum FROM {MIGRATIONS_TABLE}")
    return {version: AppliedMigration(version, name, checksum) for version, name, checksum in rows}


def _apply(connection: psycopg.Connection, migration: Migration) -> None:
    try:
        with connection.transaction():
            connection.execute(migration.sql.encode("utf-8"))
            connection.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
    except psycopg.Error as error:
        position = f" at character {error.diag.statement_position}" if error.diag else ""
        raise MigrationError(
            f"migration {migration.file_name} failed{position}: {error}; nothing of it was"
            " applied — fix the cause (or, if it is a privilege, run `tipsync db migrate` as"
            " the database owner) and run it again"
        ) from error
