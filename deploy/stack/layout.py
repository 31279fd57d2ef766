"""Where the local stack keeps its files, and the versions it runs.

Everything lives under the state folder (``schemas.config.HOME``, default ``.tipsync/``):

``cache/``      downloaded jars and archives (kept by ``stack reset``)
``kafka/``      broker configuration and log segments (node 1; ``kafka-<id>/`` for the other
                nodes of a cluster, ``stack up --brokers 3``)
``registry/``   Apicurio Registry's working directory
``postgres/``   the PostgreSQL cluster and its socket directory
``secrets/``    generated passwords (mode 0700), never committed, never logged
``logs/``       one log file per service
``run/``        pid files of the processes ``stack up`` started

Everything in it is private to the user who runs tipsync: files 0600, folders 0700 (the
``tipsync`` command sets the umask 077, and the processes it starts inherit it). One exception:
when tipsync runs as root, PostgreSQL runs as ``postgres`` and must pass through the state
folder and ``logs/``; those two get 0711 (enter by name, never list or read).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from schemas.config import Settings

KAFKA_VERSION = "4.1.2"
REGISTRY_VERSION = "3.3.3"
# Apicurio 3.3 is built for Java 21. On a machine whose newest Java is 17 the stack falls back
# to the last 3.0 release, built for Java 17, which serves the same Confluent-compatible API.
REGISTRY_VERSION_FOR_JAVA_17 = "3.0.9"
# 2: Kafka listens SASL_SSL only, with ACLs (a format-1 folder's broker is PLAINTEXT).
STATE_FORMAT = 2
MARKER_FILE = "tipsync-state.json"
# the benchmarks' folders under the state folder (each holds a private stack of its own)
BENCH_E2E_FOLDER = "bench-e2e"
BENCH_FAULTS_FOLDER = "bench-faults"
# The console a demo starts in the background (its pid in run/console.pid): `stack down`
# stops it with the stack it reads.
CONSOLE_SERVICE = "console"
# Files 0600, folders 0700: what tipsync and every process it starts create is the user's only.
PRIVATE_UMASK = 0o077


class StackError(Exception):
    """A problem the user can fix; the message says what happened and what to do."""


def private_folder(folder: Path, *, traversable: bool = False) -> None:
    """Make ``folder`` (if missing) and give it mode 0700, or 0711 when another user must pass
    through it; a folder someone else owns is left as it is."""
    folder.mkdir(parents=True, exist_ok=True)
    if folder.stat().st_uid == os.geteuid():
        folder.chmod(0o711 if traversable else 0o700)


def traversable_path(folder: Path, within: Path) -> None:
    """Make ``folder`` and each folder between it and ``within`` (``within`` too) passable by
    another user (0711), as a benchmark's private stack needs when it lives under the shared
    state folder and PostgreSQL runs as its unprivileged user; only ``folder`` when it is not
    under ``within``."""
    private_folder(folder, traversable=True)
    if folder.is_relative_to(within):
        for parent in folder.relative_to(within).parents:
            private_folder(within / parent, traversable=True)


@dataclass(frozen=True)
class StateLayout:
    home: Path
    cache: Path

    @classmethod
    def of(cls, settings: Settings) -> StateLayout:
        return cls(settings.home, settings.cache)

    @property
    def marker(self) -> Path:
        return self.home / MARKER_FILE

    @property
    def kafka_jars(self) -> Path:
        return self.cache / f"kafka-{KAFKA_VERSION}"

    def registry_dist(self, version: str = REGISTRY_VERSION) -> Path:
        return self.cache / f"apicurio-registry-{version}"

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    def kafka_node_dir(self, node_id: int) -> Path:
        """Node 1's folder is ``kafka/`` (the one node of the default stack), node i's
        ``kafka-<i>/``."""
        return self.kafka_dir if node_id == 1 else self.home / f"kafka-{node_id}"

    @property
    def registry_dir(self) -> Path:
        return self.home / "registry"

    @property
    def postgres_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def postgres_data(self) -> Path:
        return self.postgres_dir / "data"

    @property
    def postgres_socket_dir(self) -> Path:
        return self.postgres_dir / "socket"

    @property
    def secrets(self) -> Path:
        return self.home / "secrets"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def pidfile(self, service: str) -> Path:
        return self.run / f"{service}.pid"
