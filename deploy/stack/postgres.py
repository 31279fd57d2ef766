"""The local stack's PostgreSQL 15: initialised, configured and started by `stack up`."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import psycopg
from psycopg import sql

from deploy.stack.layout import PRIVATE_UMASK, StackError, private_folder
from deploy.stack.processes import (
    read_pid,
    require_free_port,
    tail,
    wait_until,
)
from deploy.stack.read_audit import (
    CREATE_AUDITOR_ROLE,
    add_settings,
    ensure_pgaudit,
)
from deploy.stack.services import Service, accepts_tcp, is_local
from schemas import config

ADMIN_ROLE = "tipsync_admin"
APP_ROLE = "tipsync"
ANALYST_ROLE = "tipsync_analyst"
REGISTRY_ROLE = "apicurio"

# --------------------------------------------------------------------------- PostgreSQL


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root: when we are root, run it as ``postgres``."""
    if os.geteuid() != 0:
        return None
    for candidate in ("postgres", "nobody"):
        try:
            pwd.getpwnam(candidate)
            return candidate
        except KeyError:
            continue
    raise StackError("running as root and no unprivileged user (postgres, nobody) exists")


class Postgres(Service):
    name = "postgres"
    variable = config.DATABASE_URL

    @property
    def url(self) -> SplitResult:
        return urlsplit(self.settings.database_url)

    @property
    def local(self) -> bool:
        return is_local(self.url.hostname)

    @property
    def port(self) -> int:
        return self.settings.postgres_port

    @property
    def address(self) -> str:
        # The URI names the passfile, never a password: safe to print.
        return self.settings.database_url

    def is_up(self) -> bool:
        if self.local and not accepts_tcp("127.0.0.1", self.port):
            return False
        try:
            with psycopg.connect(self.settings.database_url, connect_timeout=3) as connection:
                return connection.execute("select 1").fetchone() == (1,)
        except psycopg.Error:
            return False

    def _run(self, command: list[str], what: str) -> None:
        user = _unprivileged_user()
        result = subprocess.run(
            command, capture_output=True, text=True, user=user, cwd=self.layout.postgres_dir,
            umask=PRIVATE_UMASK,
        )
        if result.returncode != 0:
            raise StackError(
                f"{what} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
                f"\nLast lines of {self.layout.log(self.name)}:\n{tail(self.layout.log(self.name))}"
            )

    def _binary(self, name: str) -> str:
        folder = config.postgres_bin()
        binary = folder / name
        if not binary.exists():
            raise StackError(
                f"PostgreSQL 15 was not found at {folder}. Install it (Debian: "
                "`apt-get install postgresql-15 postgresql-contrib`) or point "
                f"{config.POSTGRES_BIN} at its bin folder."
            )
        return str(binary)

    @property
    def initialised(self) -> bool:
        return (self.layout.postgres_dir / ".initialised").is_file()

    @property
    def traversed_folders(self) -> list[Path]:
        """Folders of ours that PostgreSQL's unprivileged user (when we are root) must pass
        through, never list: the state folder (to reach postgres/, its own) and logs/ (it
        writes logs/postgres.log, a file it owns). Empty when PostgreSQL runs as us or is
        external. The stack gives exactly these the traversal bits (mode 0711)."""
        if not self.local or _unprivileged_user() is None:
            return []
        return [self.layout.home, self.layout.logs]

    def _check_reachable_by(self, user: str | None) -> None:
        if user is None:
            return
        for folder in self.traversed_folders:
            private_folder(folder, traversable=True)
        # A folder above the state folder may still shut the user out.
        probe = subprocess.run(
            ["test", "-x", str(self.layout.logs)], user=user, capture_output=True
        )
        if probe.returncode != 0:
            raise StackError(
                f"PostgreSQL runs as the unprivileged user '{user}', who cannot enter the state "
                f"folder {self.layout.home} (or its logs/). Set {config.HOME} to a folder every "
                "user can traverse (e.g. /var/tmp/tipsync) and run `tipsync stack up` again."
            )

    def _write_passwords(self) -> dict[str, str]:
        self.layout.secrets.mkdir(parents=True, exist_ok=True)
        self.layout.secrets.chmod(0o700)
        passwords = {role: secrets.token_urlsafe(24) for role in (ADMIN_ROLE, APP_ROLE)}
        passwords[REGISTRY_ROLE] = secrets.token_urlsafe(24)
        lines = [f"*:*:*:{role}:{password}" for role, password in passwords.items()]
        pgpass = self.settings.pgpass_file
        pgpass.touch(mode=0o600)
        pgpass.write_text("\n".join(lines) + "\n")
        return passwords

    def passwords(self) -> dict[str, str]:
        entries = {}
        for line in self.settings.pgpass_file.read_text().splitlines():
            *_, role, password = line.split(":", 4)
            entries[role] = password
        return entries

    def admin_url(self) -> str:
        return (
            f"postgresql://{ADMIN_ROLE}@127.0.0.1:{self.port}/postgres"
            f"?passfile={self.settings.pgpass_file}"
        )

    def _initialise(self) -> None:
        data = self.layout.postgres_data
        if data.exists() and any(data.iterdir()):
            raise StackError(
                f"{data} holds files but the stack never finished initialising it (an "
                "interrupted first start or a foreign folder). Run `tipsync stack reset --yes` "
                "to start afresh."
            )
        user = _unprivileged_user()
        self._check_reachable_by(user)
        passwords = self._write_passwords()
        for folder in (self.layout.postgres_dir, data, self.layout.postgres_socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
        data.chmod(0o700)
        log = self.layout.log(self.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch()
        pwfile = self.layout.postgres_dir / ".initdb-password"
        pwfile.write_text(passwords[ADMIN_ROLE] + "\n")
        if user:
            for path in (self.layout.postgres_dir, data, self.layout.postgres_socket_dir, log,
                         pwfile):
                shutil.chown(path, user=user, group=None)
        try:
            self._run(
                [
                    self._binary("initdb"), "-D", str(data), "-U", ADMIN_ROLE,
                    f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--no-locale",
                ],
                "initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        (data / "pg_hba.conf").write_text(
            "# tipsync local stack: passwords (SCRAM) only, loopback only\n"
            "local all all scram-sha-256\n"
            "host  all all 127.0.0.1/32 scram-sha-256\n"
        )
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# tipsync local stack\n"
                "listen_addresses = '127.0.0.1'\n"
                "max_connections = 200\n"
                "shared_buffers = 256MB\n"
                "max_wal_size = 2GB\n"
                "log_min_messages = warning\n"
                "log_min_duration_statement = -1\n"
                # Lets the operators' freshness figure use exact commit times.
                "track_commit_timestamp = on\n"
            )
        add_settings(data / "postgresql.conf")
        if user:
            shutil.chown(data / "pg_hba.conf", user=user)
        self._start_server()
        self._create_roles_and_databases(passwords)
        (self.layout.postgres_dir / ".initialised").write_text("1\n")

    def _create_roles_and_databases(self, passwords: dict[str, str]) -> None:
        with psycopg.connect(self.admin_url(), autocommit=True) as admin:
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    sql.Identifier(APP_ROLE), sql.Literal(passwords[APP_ROLE])
                )
            )
            admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(ANALYST_ROLE)))
            admin.execute(
                sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(
                    sql.Identifier(ANALYST_ROLE), sql.Identifier(APP_ROLE)
                )
            )
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(REGISTRY_ROLE), sql.Literal(passwords[REGISTRY_ROLE])
                )
            )
            for database, owner in (("tipsync", APP_ROLE), ("apicurio", REGISTRY_ROLE)):
                admin.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(owner)
                    )
                )
        app_db = self.admin_url().replace("/postgres?", "/tipsync?")
        with psycopg.connect(app_db, autocommit=True) as admin:
            # pg_trgm backs the analysts' fuzzy name search; created once by the admin.
            admin.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    def _create_auditor_role(self) -> None:
        # Cluster-wide, like the analyst group; made on every start, so a cluster from before
        # the read audit gets it too.
        with psycopg.connect(self.admin_url(), autocommit=True) as admin:
            admin.execute(CREATE_AUDITOR_ROLE)

    def _start_server(self) -> None:
        require_free_port(self.port, "PostgreSQL", self.variable)
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.layout.postgres_socket_dir} "
            # The socket is private like everything else (clients use TCP on loopback).
            "-c unix_socket_permissions=0700"
        )
        self._run(
            [
                self._binary("pg_ctl"), "-D", str(self.layout.postgres_data), "-l",
                str(self.layout.log(self.name)), "-o", options, "-w", "-t", "60", "start",
            ],
            "starting PostgreSQL",
        )

    def start(self) -> None:
        if not self.local or self.is_up():
            return
        ensure_pgaudit(config.postgres_bin())
        if not self.initialised:
            require_free_port(self.port, "PostgreSQL", self.variable)
            try:
                self._initialise()
            except BaseException:
                # A half-made cluster would block every later start: undo it, so running
                # `stack up` again after fixing the cause just works.
                if (self.layout.postgres_data / "postmaster.pid").exists():
                    self.stop()
                shutil.rmtree(self.layout.postgres_data, ignore_errors=True)
                raise
            self._create_auditor_role()
            return
        if not (self.layout.postgres_data / "PG_VERSION").is_file():
            raise StackError(
                f"{self.layout.postgres_data} is not a PostgreSQL cluster (corrupt or foreign "
                "state). Run `tipsync stack reset --yes` to start afresh."
            )
        add_settings(self.layout.postgres_data / "postgresql.conf")
        self._start_server()
        self._create_auditor_role()

    def wait(self) -> None:
        wait_until(
            self.is_up, service="PostgreSQL", timeout=60, process=None,
            log=self.layout.log(self.name),
        )

    def stop(self) -> bool:
        if not self.local or not (self.layout.postgres_data / "postmaster.pid").exists():
            return False
        self._run(
            [self._binary("pg_ctl"), "-D", str(self.layout.postgres_data), "-m", "fast", "-w",
             "stop"],
            "stopping PostgreSQL",
        )
        return True

    def pid(self) -> int | None:
        return read_pid(self.layout.postgres_data / "postmaster.pid")


