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
from deploy.stack.scram import scram_verifier
from deploy.stack.services import Service, accepts_tcp, is_local
from deploy.stack.tls import ensure_tls, tls_files
from schemas import config
from sinks.roles import SINK_ROLE

ADMIN_ROLE = "tipsync_admin"  # superuser: roles, extensions, analysts' logins
APP_ROLE = "tipsync"  # owns the databases and the schema; migrations run as it
ANALYST_ROLE = "tipsync_analyst"  # the analysts' group (NOLOGIN)
REGISTRY_ROLE = "apicurio"  # owns the registry's database only
PASSWORD_ROLES = (ADMIN_ROLE, APP_ROLE, SINK_ROLE, REGISTRY_ROLE)

# Loopback may connect without TLS (only this machine's users reach it, and the socket and
# state folder are theirs); every other address must use TLS and a SCRAM password. The
# first line that matches decides, so a plaintext connection from elsewhere matches none.
PG_HBA = """# tipsync local stack: SCRAM passwords always; TLS for every non-loopback address
local   all all              scram-sha-256
host    all all 127.0.0.1/32 scram-sha-256
host    all all ::1/128      scram-sha-256
hostssl all all 0.0.0.0/0    scram-sha-256
hostssl all all ::/0         scram-sha-256
"""

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

    def _ensure_passwords(self) -> dict[str, str]:
        """Every role's password, generated into the pgpass file for the roles that have
        none yet (all of them on the first start; ``tipsync_sink`` on a cluster made before
        the sink had a role of its own). Existing passwords are kept."""
        private_folder(self.layout.secrets)
        pgpass = self.settings.pgpass_file
        passwords = self.passwords() if pgpass.is_file() else {}
        missing = {role: secrets.token_urlsafe(24) for role in PASSWORD_ROLES
                   if role not in passwords}
        if missing:
            pgpass.touch(mode=0o600)
            pgpass.chmod(0o600)
            with open(pgpass, "a") as file:
                file.writelines(f"*:*:*:{role}:{password}\n" for role, password in missing.items())
        return {**passwords, **missing}

    def passwords(self) -> dict[str, str]:
        entries = {}
        for line in self.settings.pgpass_file.read_text().splitlines():
            *_, role, password = line.split(":", 4)
            entries[role] = password
        return entries

    def _tls_parameters(self) -> str:
        """What every URL the stack writes adds: TLS, and the server's certificate checked
        against the stack's CA and the host name (libpq's ``verify-full``)."""
        return f"sslmode=verify-full&sslrootcert={tls_files(self.layout.secrets).ca}"

    def admin_url(self, database: str = "postgres") -> str:
        return (
            f"postgresql://{ADMIN_ROLE}@127.0.0.1:{self.port}/{database}"
            f"?passfile={self.settings.pgpass_file}&{self._tls_parameters()}"
        )

    def jdbc_url(self, database: str) -> str:
        """The JDBC URL of ``database`` (the registry's), verifying the server as libpq does;
        pgjdbc reads the PEM CA file named by ``sslrootcert``."""
        return (
            f"jdbc:postgresql://127.0.0.1:{self.port}/{database}?{self._tls_parameters()}"
        )

    def _install_certificate(self) -> None:
        """The stack's server certificate and key, copied into ``postgres/tls/`` at every
        start (``ensure_tls`` renews them before they expire): PostgreSQL refuses a key that
        is not its own user's with mode 0600, and when we are root that user is
        ``postgres``, who must not read the rest of ``secrets/``."""
        files = ensure_tls(self.layout.secrets)
        folder = self.layout.postgres_dir / "tls"
        folder.mkdir(mode=0o700, exist_ok=True)
        user = _unprivileged_user()
        for source, name in ((files.server_certificate, "server.pem"),
                             (files.server_key, "server-key.pem")):
            target = folder / name
            target.touch(mode=0o600)
            target.chmod(0o600)
            target.write_bytes(source.read_bytes())
            if user:
                shutil.chown(target, user=user)
        if user:
            shutil.chown(folder, user=user)

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
        passwords = self._ensure_passwords()
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
        self._write_hba()
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
        self._start_server()
        self._ensure_roles_and_databases(passwords)
        (self.layout.postgres_dir / ".initialised").write_text("1\n")

    def _write_hba(self) -> None:
        hba = self.layout.postgres_data / "pg_hba.conf"
        hba.write_text(PG_HBA)
        user = _unprivileged_user()
        if user:
            shutil.chown(hba, user=user)

    def _ensure_roles_and_databases(self, passwords: dict[str, str]) -> None:
        """The roles, their rights and the two databases, made if missing and corrected if
        an older stack made them differently (the owner once held the analyst group WITH
        ADMIN OPTION; the sink once wrote as the owner). Run as the admin at every start."""
        roles = {
            # Owns the store; CREATEDB for the throwaway databases of tests and benchmarks.
            APP_ROLE: "LOGIN CREATEDB NOCREATEROLE",
            # Writes rows only: the sink_role migration grants them, as the owner.
            SINK_ROLE: "LOGIN NOCREATEDB NOCREATEROLE",
            REGISTRY_ROLE: "LOGIN NOCREATEDB NOCREATEROLE",
        }
        with psycopg.connect(self.admin_url(), autocommit=True) as admin:
            existing = {name for (name,) in admin.execute("SELECT rolname FROM pg_roles")}
            for role, attributes in roles.items():
                if role in existing:
                    admin.execute(sql.SQL(f"ALTER ROLE {{}} {attributes}").format(
                        sql.Identifier(role)
                    ))
                    continue
                # The server gets a SCRAM verifier, never the password: no server log (an
                # error's statement, an audit line) can show it.
                admin.execute(
                    sql.SQL(f"CREATE ROLE {{}} {attributes} PASSWORD {{}}").format(
                        sql.Identifier(role), sql.Literal(scram_verifier(passwords[role]))
                    )
                )
            if ANALYST_ROLE not in existing:
                admin.execute(
                    sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(ANALYST_ROLE))
                )
            # Analysts are managed by the admin: no other role is a member of the group.
            for (member,) in admin.execute(
                "SELECT m.member::regrole::text FROM pg_auth_members AS m"
                " WHERE m.roleid = to_regrole(%s) AND m.member::regrole::text = ANY(%s)",
                (ANALYST_ROLE, list(roles)),
            ).fetchall():
                admin.execute(sql.SQL("REVOKE {} FROM {}").format(
                    sql.Identifier(ANALYST_ROLE), sql.Identifier(member)
                ))
            databases = {name for (name,) in admin.execute("SELECT datname FROM pg_database")}
            for database, owner in (("tipsync", APP_ROLE), ("apicurio", REGISTRY_ROLE)):
                if database not in databases:
                    admin.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(database), sql.Identifier(owner)
                        )
                    )
        with psycopg.connect(self.admin_url("tipsync"), autocommit=True) as admin:
            # pg_trgm backs the analysts' fuzzy name search; created once by the admin.
            admin.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    def _create_auditor_role(self) -> None:
        # Cluster-wide, like the analyst group; made on every start, so a cluster from before
        # the read audit gets it too.
        with psycopg.connect(self.admin_url(), autocommit=True) as admin:
            admin.execute(CREATE_AUDITOR_ROLE)

    def _start_server(self) -> None:
        require_free_port(self.port, "PostgreSQL", self.variable)
        self._install_certificate()
        tls = self.layout.postgres_dir / "tls"
        # TLS is switched on here rather than in postgresql.conf, so a cluster made before
        # the stack had TLS gets it too. listen_addresses stays in postgresql.conf
        # (127.0.0.1): a deployment opens other addresses there (docs/OPERATIONS.md).
        options = (
            f"-p {self.port} "
            f"-c unix_socket_directories={self.layout.postgres_socket_dir} "
            # The socket is private like everything else (clients use TCP on loopback).
            "-c unix_socket_permissions=0700 "
            f"-c ssl=on -c ssl_cert_file={tls / 'server.pem'} "
            f"-c ssl_key_file={tls / 'server-key.pem'} -c ssl_min_protocol_version=TLSv1.2"
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
        if "hostssl" not in (self.layout.postgres_data / "pg_hba.conf").read_text():
            # Made before TLS: its rules allowed loopback only, which these keep.
            self._write_hba()
        passwords = self._ensure_passwords()
        self._start_server()
        self._ensure_roles_and_databases(passwords)
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


