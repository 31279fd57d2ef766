"""Bringing the three services up and down together, in the right order.

The state folder's marker remembers how many Kafka nodes the stack has (``stack up
--brokers N`` sets it on a stack whose Kafka holds no data yet; one by default), so every later
``up``, ``down`` and ``status`` handles all of them.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.stack.acls import KafkaAccess, legacy_stream_grants, service_grants
from deploy.stack.clients import write_client_file
from deploy.stack.health import Health, kafka_health, postgres_health, registry_health
from deploy.stack.kafka import Kafka, cluster_bootstrap
from deploy.stack.layout import (
    BENCH_E2E_FOLDER,
    BENCH_FAULTS_FOLDER,
    CONSOLE_SERVICE,
    MARKER_FILE,
    STATE_FORMAT,
    StackError,
    StateLayout,
    private_folder,
    traversable_path,
)
from deploy.stack.postgres import Postgres
from deploy.stack.principals import ADMIN, prepare_agency_secrets, service_secrets
from deploy.stack.processes import read_pid, stop_process
from deploy.stack.registry import Registry
from deploy.stack.services import Service
from deploy.stack.tls import ensure_tls
from schemas import config
from schemas.agencies import load_agencies
from schemas.config import Settings
from schemas.topics import TOPICS
from sinks.migrate import MigrationError, migrate


@dataclass
class UpReport:
    seconds: float
    started: list[str]
    already_up: list[str]
    external: list[str]


class LocalStack:
    def __init__(self, settings: Settings, brokers: int | None = None) -> None:
        """``brokers``: the Kafka nodes asked for (``stack up --brokers``); None for the count
        the state folder remembers (one for a new folder)."""
        self.settings = settings
        self.layout = StateLayout.of(settings)
        self.postgres = Postgres(settings, self.layout)
        self.kafka = Kafka(settings, self.layout, brokers or self.remembered_brokers())
        self.registry = Registry(settings, self.layout, self.postgres)

    @property
    def services(self) -> list[Service]:
        return [self.postgres, self.kafka, self.registry]

    # ------------------------------------------------------------------ state folder

    def check_state_folder(self) -> None:
        """Refuse to write into a folder that is not ours, or of an unknown format."""
        home = self.layout.home
        marker = self.layout.marker
        if marker.is_file():
            try:
                state = json.loads(marker.read_text())
            except json.JSONDecodeError as error:
                raise StackError(
                    f"{marker} is corrupt ({error}). Run `tipsync stack reset --yes` to start "
                    "afresh (downloads are kept)."
                ) from None
            if state.get("format") != STATE_FORMAT:
                raise StackError(
                    f"{home} was written by a different tipsync (state format "
                    f"{state.get('format')!r}, this one uses {STATE_FORMAT}). Run "
                    "`tipsync stack reset --yes` to start afresh."
                )
            return
        # a benchmark's folder may come first: a benchmark of an earlier tipsync made its
        # folder here without claiming the state folder
        ours = self._kept_by_reset() | {home / BENCH_E2E_FOLDER, home / BENCH_FAULTS_FOLDER}
        if home.exists() and any(entry not in ours for entry in home.iterdir()):
            raise StackError(
                f"{home} is not empty and is not a tipsync state folder (no {MARKER_FILE}). "
                f"Point {config.HOME} at an empty or new folder, or run "
                "`tipsync stack reset --yes` if it is an old tipsync folder you can discard."
            )
        # New, empty, or holding only what a reset keeps (a reset by an older tipsync removed
        # the marker too) and the benchmarks' folders: ours to claim.
        home.mkdir(parents=True, exist_ok=True)
        self._write_marker()

    def _kept_by_reset(self) -> set[Path]:
        return {self.layout.cache}

    def _write_marker(self) -> None:
        state: dict[str, Any] = {"format": STATE_FORMAT}
        if self.kafka.brokers != 1:
            state["brokers"] = self.kafka.brokers
        self.layout.marker.write_text(json.dumps(state) + "\n")

    def remembered_brokers(self) -> int:
        """How many Kafka nodes the state folder's stack has (one when it does not say)."""
        try:
            state = json.loads(self.layout.marker.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return 1
        count = state.get("brokers", 1) if isinstance(state, dict) else 1
        return count if isinstance(count, int) else 1

    def settle_node_count(self) -> None:
        """Remember the node count asked for; refuse to change it once Kafka holds data (the
        quorum is static and the topics' replicas are placed)."""
        remembered = self.remembered_brokers()
        if self.kafka.brokers == remembered:
            return
        formatted = [node for node in self.kafka.nodes[:remembered]
                     if (node.data / "meta.properties").is_file()]
        if formatted:
            raise StackError(
                f"the stack in {self.layout.home} has {remembered} Kafka node(s) with data; "
                f"it cannot become {self.kafka.brokers}. Run `tipsync stack up` to keep "
                f"{remembered}, or `tipsync stack reset --yes` (every topic, schema and table "
                f"is deleted) and then `tipsync stack up --brokers {self.kafka.brokers}`."
            )
        self._write_marker()

    def bootstrap_note(self) -> str | None:
        """A word when the bootstrap list names fewer nodes than the stack has: a client that
        starts while the one it names is down finds no other."""
        named = len(self.settings.kafka_bootstrap.split(","))
        if not self.kafka.local or named >= self.kafka.brokers:
            return None
        full = cluster_bootstrap(self.kafka.port, self.kafka.brokers)
        return (
            f"{config.KAFKA_BOOTSTRAP} names {named} of the {self.kafka.brokers} Kafka nodes; "
            f"a client that starts while that node is down finds no other. Set "
            f"{config.KAFKA_BOOTSTRAP}={full}"
        )

    def protect_state_folder(self) -> None:
        """The state folder and logs/ 0700; 0711 for the ones PostgreSQL's unprivileged user
        must pass through when we are root (see ``Postgres.traversed_folders``). What is
        inside is made private by the umask tipsync runs under."""
        traversed = self.postgres.traversed_folders
        for folder in (self.layout.home, self.layout.logs):
            private_folder(folder, traversable=folder in traversed)

    # ------------------------------------------------------------------ commands

    def up(self) -> UpReport:
        began = time.monotonic()
        self.check_state_folder()
        self.settle_node_count()
        self.protect_state_folder()
        self.issue_service_credentials()
        report = UpReport(0.0, [], [], [])
        if self.registry.local and self.registry.pid() is not None and not _answers(
                self.registry):
            # ours and running, but refusing the admin: its users are older than the store
            # (the admin's secret rotated meanwhile); started again below, with the store's
            self.registry.stop()
        for service in self.services:
            if not service.local:
                report.external.append(service.name)
            elif _answers(service):
                report.already_up.append(service.name)
        # PostgreSQL first: the registry keeps its schemas in it. Kafka and the registry
        # then start side by side and are waited for together.
        if self.postgres.name not in report.already_up + report.external:
            self.postgres.start()
            self.postgres.wait()
            report.started.append(self.postgres.name)
        if self.postgres.local:
            self._migrate_store()
        for batch in self._start_order():
            for service in batch:
                if service.name not in report.already_up + report.external:
                    service.start()
            for service in batch:
                if service.name not in report.already_up + report.external:
                    service.wait()
                    report.started.append(service.name)
        for service in self.services:
            if service.name in report.external and not _answers(service):
                raise StackError(
                    f"{service.name} at {service.address} (from {service.variable}) does not "
                    "answer; the local stack never starts services configured elsewhere."
                )
        if self.kafka.local:
            self.grant_services()
        if self.registry.name in report.already_up:
            # users granted since it started (agencies' secrets prepared above) need a restart
            self.registry.reload_if_stale()
        report.seconds = time.monotonic() - began
        return report

    def _start_order(self) -> list[list[Service]]:
        """Kafka and the registry start side by side and are waited for together; a cluster's
        nodes start after the registry answers: three JVMs starting beside it on a busy
        two-core machine made its first connections to PostgreSQL time out (Agroal's
        acquisition timeout), after which it never created its tables and answered 500 (seen
        twice in four starts at a load average of 40)."""
        if self.kafka.brokers == 1:
            return [[self.kafka, self.registry]]
        return [[self.registry], [self.kafka]]

    def _migrate_store(self) -> None:
        """The store's migrations, as its owner (what `tipsync db migrate` does): the sink
        runs as a role that may not apply them, and refuses a store that lacks them."""
        try:
            migrate(self.settings.database_url)
        except MigrationError as error:
            raise StackError(f"migrating the reconciled store failed: {error}") from None

    def issue_service_credentials(self) -> None:
        """The CA and server certificate, each service principal's secret and its client
        properties file (``secrets/clients/<principal>.properties``): made once, kept."""
        tls = ensure_tls(self.layout.secrets)
        for principal, secret in service_secrets(self.layout).items():
            path = config.local_client_file(self.layout.home, principal)
            write_client_file(path, self.settings, principal, secret, tls)
        # every registered agency's future secret, known to the registry before it starts
        prepare_agency_secrets(self.layout, load_agencies())

    def grant_services(self) -> None:
        """The service principals' SCRAM credentials (set to the secret of
        ``principals.json`` every time, so a secret made anew there takes effect) and ACLs
        (``deploy.stack.acls``, created when missing) on the local broker: the stream reads
        the topics of the registered agencies, and no longer every agency prefix."""
        access = KafkaAccess(self.kafka.admin_client())
        for principal, secret in service_secrets(self.layout).items():
            if principal != ADMIN:
                access.set_password(principal, secret)
        access.grant(service_grants(TOPICS, load_agencies()))
        access.revoke(legacy_stream_grants(TOPICS))

    def down(self) -> list[str]:
        stopped = []
        console = read_pid(self.layout.pidfile(CONSOLE_SERVICE))
        if console is not None:  # the demo's console: nothing to show without the stack
            stop_process(console, CONSOLE_SERVICE)
            self.layout.pidfile(CONSOLE_SERVICE).unlink(missing_ok=True)
            stopped.append(CONSOLE_SERVICE)
        # Reverse order: the registry holds connections to PostgreSQL.
        for service in (self.registry, self.kafka, self.postgres):
            if service.local and service.stop():
                stopped.append(service.name)
        return stopped

    def status(self) -> dict[str, dict[str, Any]]:
        """Each service: its address, ``up``, ``state`` (up, degraded: running but not
        usable, down) and, unless up, ``problem`` (what is wrong and the fix;
        ``deploy.stack.health``)."""
        keys = {"kafka": "bootstrap", "registry": "url", "postgres": "dsn"}
        checks = {"kafka": lambda: kafka_health(self.kafka),
                  "registry": lambda: registry_health(self.registry),
                  "postgres": lambda: postgres_health(self.postgres)}
        result: dict[str, dict[str, Any]] = {}
        for service in (self.kafka, self.registry, self.postgres):
            try:
                health = checks[service.name]()
            except Exception as error:  # noqa: BLE001 - a check that fails says why
                health = Health("down", f"{service.name} could not be checked: {error}")
            result[service.name] = {
                keys[service.name]: service.address,
                "up": health.up,
                "state": health.state,
                "problem": health.problem,
                "managed": service.local,
                "pid": service.pid() if service.local else None,
            }
        if self.kafka.local and self.kafka.brokers > 1:
            result[self.kafka.name]["nodes"] = self.kafka.node_report()
        return result

    def reset(self) -> None:
        """Stop everything and delete all state except the download cache; the folder stays
        a tipsync state folder (marker rewritten), so ``up`` starts afresh in it."""
        self.down()
        home = self.layout.home
        if not home.exists():
            self.check_state_folder()  # a new folder, claimed with the node count asked for
            return
        for entry in home.iterdir():
            if entry in self._kept_by_reset():
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        self._write_marker()


def prepare_benchmark_folder(shared: Settings, bench_home: Path) -> None:
    """Make a benchmark's folder (its private stack goes below it). Under the shared state
    folder, that folder is claimed first, as ``tipsync stack up`` would (so a later ``stack
    up`` finds it its own, and a foreign folder is refused the same way); PostgreSQL's
    unprivileged user (when we are root) must pass through every folder down to the private
    stack's, which makes only its own state folder so."""
    within = shared.home.resolve()
    if bench_home.is_relative_to(within):
        LocalStack(shared).check_state_folder()
    traversable_path(bench_home, within=within)


def _answers(service: Service) -> bool:
    """``is_up``, with a failure to answer (a refused login, a timeout) as "no": Kafka that
    refuses the admin is then started (no node starts twice) and waited for, which repairs
    the admin's credential (``Kafka.wait``)."""
    try:
        return service.is_up()
    except Exception:  # noqa: BLE001
        return False
