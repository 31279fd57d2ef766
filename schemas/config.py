"""The one configuration surface of tipsync: environment variables with a ``TIPSYNC_`` prefix.

Every default points at the local stack (``tipsync stack up``), so the same code runs
unchanged against a production cluster once the three connection variables are set:

``TIPSYNC_KAFKA_BOOTSTRAP``  Kafka bootstrap servers, ``host:port[,host:port]``
``TIPSYNC_REGISTRY_URL``     the schema registry's Confluent-compatible API base URL
``TIPSYNC_DATABASE_URL``     PostgreSQL connection URI of the reconciled store
``TIPSYNC_HOME``             the local state folder (stack data, checkpoints, rejects)
``TIPSYNC_CACHE``            where the stack keeps its downloads (default ``$TIPSYNC_HOME/cache``)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_KAFKA_PORT = 19092
DEFAULT_REGISTRY_PORT = 18081
DEFAULT_POSTGRES_PORT = 15432
LOOPBACK = "127.0.0.1"

# The local stack's PostgreSQL password is generated on first start and kept in this file
# (mode 0600) under TIPSYNC_HOME; libpq reads it through the URI's passfile parameter, so no
# secret ever appears in the repository, a URI or a log line.
PGPASS_RELATIVE = Path("secrets") / "pgpass"


def project_root() -> Path | None:
    """The source checkout this code runs from, when it runs from one (editable install)."""
    candidate = Path(__file__).resolve().parents[1]
    return candidate if (candidate / "pyproject.toml").is_file() else None


def default_home() -> Path:
    root = project_root()
    return (root / ".tipsync") if root else (Path.home() / ".tipsync")


@dataclass(frozen=True)
class Settings:
    """Where tipsync finds Kafka, the registry, PostgreSQL and its own state."""

    home: Path
    cache: Path
    kafka_bootstrap: str
    registry_url: str
    database_url: str

    @property
    def kafka_port(self) -> int:
        return _port_of(self.kafka_bootstrap.split(",")[0], DEFAULT_KAFKA_PORT)

    @property
    def registry_port(self) -> int:
        return urlsplit(self.registry_url).port or DEFAULT_REGISTRY_PORT

    @property
    def postgres_port(self) -> int:
        return urlsplit(self.database_url).port or DEFAULT_POSTGRES_PORT

    @property
    def pgpass_file(self) -> Path:
        return self.home / PGPASS_RELATIVE


def _port_of(host_port: str, default: int) -> int:
    _, _, port = host_port.rpartition(":")
    return int(port) if port.isdigit() else default


def metrics_port(
    variable: str, default: int, option: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int | None:
    """The port a process serves its Prometheus metrics on: the command-line option first,
    then the environment variable, then the default; None when it is 0 (no endpoint).
    The one rule for every ``TIPSYNC_*_METRICS_PORT`` (stream, sink, monitor)."""
    if option is None:
        env = os.environ if environ is None else environ
        configured = env.get(variable, "").strip()
        if not configured:
            return default
        if not configured.isdigit():
            raise ValueError(
                f"{variable}='{configured}' is not a port number; set a whole number such as"
                f" {default}, or 0 for no metrics endpoint"
            )
        option = int(configured)
    if not 0 <= option <= 65535:
        raise ValueError(
            f"metrics port {option} is outside 0..65535; give a free port such as {default},"
            " or 0 for no metrics endpoint"
        )
    return option or None


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read the settings from the environment (or the mapping given), with local defaults."""
    env = os.environ if environ is None else environ
    home = Path(env.get("TIPSYNC_HOME") or default_home()).expanduser().resolve()
    bootstrap = env.get("TIPSYNC_KAFKA_BOOTSTRAP") or f"{LOOPBACK}:{DEFAULT_KAFKA_PORT}"
    registry = (
        env.get("TIPSYNC_REGISTRY_URL")
        or f"http://{LOOPBACK}:{DEFAULT_REGISTRY_PORT}/apis/ccompat/v7"
    ).rstrip("/")
    database = env.get("TIPSYNC_DATABASE_URL") or (
        f"postgresql://tipsync@{LOOPBACK}:{DEFAULT_POSTGRES_PORT}/tipsync"
        f"?passfile={home / PGPASS_RELATIVE}"
    )
    cache = Path(env.get("TIPSYNC_CACHE") or home / "cache").expanduser().resolve()
    return Settings(
        home=home,
        cache=cache,
        kafka_bootstrap=bootstrap,
        registry_url=registry,
        database_url=database,
    )
