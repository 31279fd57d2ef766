"""The three services of the local stack: PostgreSQL 15, Kafka (KRaft) and Apicurio Registry.

Each service knows how to tell whether it answers (``is_up``), how to start without waiting
(``start``), how to wait until it really answers (``wait``), and how to stop only what we
started (``stop``). A service whose configured address is not on this machine is external:
the stack checks it but never starts or stops it.
"""

from __future__ import annotations

import base64
import logging
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx
import psycopg
from psycopg import sql

from deploy.stack import artifacts
from deploy.stack.layout import PRIVATE_UMASK, StackError, StateLayout, private_folder
from deploy.stack.processes import (
    read_pid,
    require_free_port,
    start_background,
    stop_process,
    tail,
    wait_until,
)
from schemas import config
from schemas.config import Settings

ADMIN_ROLE = "tipsync_admin"
APP_ROLE = "tipsync"
ANALYST_ROLE = "tipsync_analyst"
REGISTRY_ROLE = "apicurio"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _is_local(host: str | None) -> bool:
    return (host or "127.0.0.1") in LOCAL_HOSTS


def _accepts_tcp(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Service:
    name: str
    variable: str

    def __init__(self, settings: Settings, layout: StateLayout) -> None:
        self.settings = settings
        self.layout = layout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def local(self) -> bool:
        raise NotImplementedError

    @property
    def address(self) -> str:
        raise NotImplementedError

    def is_up(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def wait(self) -> None:
        raise NotImplementedError

    def stop(self) -> bool:
        """Stop the process ``up`` started; True when there was one."""
        pid = read_pid(self.layout.pidfile(self.name))
        if pid is None:
            return False
        stop_process(pid, str(self.layout.home))
        self.layout.pidfile(self.name).unlink(missing_ok=True)
        return True

    def pid(self) -> int | None:
        return read_pid(self.layout.pidfile(self.name))


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
        return _is_local(self.url.hostname)

    @property
    def port(self) -> int:
        return self.settings.postgres_port

    @property
    def address(self) -> str:
        # The URI names the passfile, never a password: safe to print.
        return self.settings.database_url

    def is_up(self) -> bool:
        if self.local and not _accepts_tcp("127.0.0.1", self.port):
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
            return
        if not (self.layout.postgres_data / "PG_VERSION").is_file():
            raise StackError(
                f"{self.layout.postgres_data} is not a PostgreSQL cluster (corrupt or foreign "
                "state). Run `tipsync stack reset --yes` to start afresh."
            )
        self._start_server()

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


# --------------------------------------------------------------------------- Kafka


KAFKA_LOG4J = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


# Kafka's reserved ids (org.apache.kafka.common.Uuid.RESERVED): ZERO_UUID and ONE_UUID (which
# is also METADATA_TOPIC_ID).
RESERVED_KAFKA_IDS = frozenset({bytes(16), bytes(15) + b"\x01"})


def new_cluster_id(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """A KRaft cluster id made the way Kafka's ``Uuid.randomUuid()`` makes one.

    Kafka draws a random (version 4) UUID and draws again while the id is reserved or its
    URL-safe base64 form (22 characters, no padding) starts with '-': StorageTool would read
    such an id as an option (``argument --cluster-id/-t: expected one argument``). About one
    draw in 64 starts with '-'. Doing it here spares a second JVM start (``random-uuid``).
    """
    while True:
        candidate = uuid.UUID(bytes=random_bytes(16), version=4).bytes
        text = base64.urlsafe_b64encode(candidate).decode("ascii").rstrip("=")
        if candidate not in RESERVED_KAFKA_IDS and not text.startswith("-"):
            return text


def _silent_logger() -> logging.Logger:
    """librdkafka logs every refused connection; while probing, those are expected."""
    logger = logging.getLogger("tipsync.stack.probe")
    if not logger.handlers:  # probes run every 0.5 s while waiting: one handler, not hundreds
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    return logger


class Kafka(Service):
    name = "kafka"
    variable = config.KAFKA_BOOTSTRAP

    @property
    def host(self) -> str:
        return self.settings.kafka_bootstrap.split(",")[0].rpartition(":")[0] or "127.0.0.1"

    @property
    def local(self) -> bool:
        return _is_local(self.host)

    @property
    def port(self) -> int:
        return self.settings.kafka_port

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def address(self) -> str:
        return self.settings.kafka_bootstrap

    def is_up(self) -> bool:
        if self.local and not _accepts_tcp("127.0.0.1", self.port):
            return False
        from confluent_kafka.admin import AdminClient

        probe_config: dict[str, Any] = {
            "bootstrap.servers": self.settings.kafka_bootstrap, "logger": _silent_logger()
        }
        admin = AdminClient(probe_config)
        metadata = admin.list_topics(timeout=5)
        return bool(metadata.brokers)

    def _properties(self) -> str:
        data = self.layout.kafka_dir / "data"
        return "\n".join(
            [
                "# tipsync local stack: one KRaft node, broker and controller, loopback only",
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={data}",
                "num.partitions=6",
                # Topics are governed: `tipsync topics create` makes them, typos fail loudly.
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                # The cleaner stays on (changelogs and reconciled topics are compacted) but
                # with a buffer sized for a small heap.
                "log.cleaner.enable=true",
                "log.cleaner.dedupe.buffer.size=33554432",
                "log.retention.hours=168",
                "",
            ]
        )

    def _java(self, main_class: str, *arguments: str) -> list[str]:
        return [
            artifacts.java_executable(),
            "-Xms256m", "-Xmx768m", "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.layout.kafka_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.layout.logs}",
            "-cp", artifacts.kafka_classpath(self.layout),
            main_class, *arguments,
        ]

    def _format_if_needed(self) -> None:
        kafka_dir = self.layout.kafka_dir
        data = kafka_dir / "data"
        kafka_dir.mkdir(parents=True, exist_ok=True)
        properties = kafka_dir / "server.properties"
        properties.write_text(self._properties())
        (kafka_dir / "log4j2.properties").write_text(KAFKA_LOG4J)
        if (data / "meta.properties").is_file():
            return
        if data.exists() and any(data.iterdir()):
            raise StackError(
                f"{data} holds files but no meta.properties (corrupt or foreign state). Run "
                "`tipsync stack reset --yes` to start afresh."
            )
        result = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c",
                       str(properties)),
            capture_output=True, text=True, umask=PRIVATE_UMASK,
        )
        if result.returncode != 0:
            raise StackError(
                f"formatting Kafka's storage in {data} failed:\n{result.stdout}{result.stderr}"
            )

    def start(self) -> None:
        if not self.local or self.is_up():
            return
        require_free_port(self.port, "Kafka", self.variable)
        require_free_port(
            self.controller_port, "Kafka's controller (the Kafka port + 1)", self.variable
        )
        self._format_if_needed()
        self.process = start_background(
            self._java("kafka.Kafka", str(self.layout.kafka_dir / "server.properties")),
            log=self.layout.log(self.name),
            pidfile=self.layout.pidfile(self.name),
            cwd=self.layout.kafka_dir,
        )

    def wait(self) -> None:
        wait_until(
            self.is_up, service="Kafka", timeout=120, process=self.process,
            log=self.layout.log(self.name),
        )


# --------------------------------------------------------------------------- Apicurio


class Registry(Service):
    name = "registry"
    variable = config.REGISTRY_URL

    def __init__(self, settings: Settings, layout: StateLayout, postgres: Postgres) -> None:
        super().__init__(settings, layout)
        self.postgres = postgres

    @property
    def local(self) -> bool:
        return _is_local(urlsplit(self.settings.registry_url).hostname)

    @property
    def port(self) -> int:
        return self.settings.registry_port

    @property
    def management_port(self) -> int:
        return self.port + 1

    @property
    def address(self) -> str:
        return self.settings.registry_url

    def is_up(self) -> bool:
        if self.local and not _accepts_tcp("127.0.0.1", self.port):
            return False
        response = httpx.get(f"{self.settings.registry_url}/subjects", timeout=5)
        return response.status_code == 200

    def _environment(self) -> dict[str, str]:
        password = self.postgres.passwords()[REGISTRY_ROLE]
        env = dict(os.environ)
        env.update(
            {
                "QUARKUS_HTTP_HOST": "127.0.0.1",
                "QUARKUS_HTTP_PORT": str(self.port),
                "QUARKUS_MANAGEMENT_HOST": "127.0.0.1",
                "QUARKUS_MANAGEMENT_PORT": str(self.management_port),
                "QUARKUS_OTEL_SDK_DISABLED": "true",
                "APICURIO_STORAGE_KIND": "sql",
                "APICURIO_STORAGE_SQL_KIND": "postgresql",
                "APICURIO_DATASOURCE_URL":
                    f"jdbc:postgresql://127.0.0.1:{self.postgres.port}/apicurio",
                "APICURIO_DATASOURCE_USERNAME": REGISTRY_ROLE,
                # Passed through the environment, never on the command line (ps shows that).
                "APICURIO_DATASOURCE_PASSWORD": password,
                "APICURIO_DATASOURCE_JDBC_INITIAL_SIZE": "2",
                "APICURIO_DATASOURCE_JDBC_MIN_SIZE": "2",
                "APICURIO_DATASOURCE_JDBC_MAX_SIZE": "10",
            }
        )
        return env

    def start(self) -> None:
        if not self.local or self.is_up():
            return
        require_free_port(self.port, "Apicurio Registry", self.variable)
        require_free_port(
            self.management_port, "Apicurio Registry's management port (registry port + 1)",
            self.variable,
        )
        version, java = artifacts.registry_release()
        runner = artifacts.ensure_registry(self.layout, version)
        self.layout.registry_dir.mkdir(parents=True, exist_ok=True)
        self.process = start_background(
            [
                java, "-Xms128m", "-Xmx512m", "-XX:+UseG1GC",
                f"-Djava.io.tmpdir={self.layout.registry_dir}",
                # Named, Quarkus leaves Vert.x's file cache to Vert.x (mode 0700); left to
                # default, Quarkus makes it world-readable and writable under java.io.tmpdir.
                f"-Dvertx.cacheDirBase={self.layout.registry_dir / 'vertx-cache'}",
                "-jar", str(runner),
            ],
            log=self.layout.log(self.name),
            pidfile=self.layout.pidfile(self.name),
            cwd=self.layout.registry_dir,
            env=self._environment(),
        )

    def wait(self) -> None:
        wait_until(
            self.is_up, service="Apicurio Registry", timeout=180, process=self.process,
            log=self.layout.log(self.name),
        )
