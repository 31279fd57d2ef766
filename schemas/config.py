"""The one configuration surface of tipsync: environment variables with a ``TIPSYNC_`` prefix.

This module is the only one that names or reads a ``TIPSYNC_*`` variable (a unit test,
tests/unit/schemas/test_settings_surface.py, keeps it so). Every variable is declared once,
as data, in ``VARIABLES``: its name, its default as a user reads it, and what it sets; the
README's Configuration table lists exactly these (the same test compares them). Other
modules import the name constants below when a message or a help text must mention a
variable, and the typed readers below when they need a value, so a variable is spelt, read
and validated in one place.

Every default points at the local stack (``tipsync stack up``), so the same code runs
unchanged against a production cluster once the three connection variables are set
(``KAFKA_BOOTSTRAP``, ``REGISTRY_URL``, ``DATABASE_URL``).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from schemas.client_config import ClientConfig, ClientConfigError, load_client_config

DEFAULT_KAFKA_PORT = 19092
DEFAULT_REGISTRY_PORT = 18081
DEFAULT_POSTGRES_PORT = 15432
LOOPBACK = "127.0.0.1"

# The local stack's PostgreSQL password is generated on first start and kept in this file
# (mode 0600) under the state folder (HOME); libpq reads it through the URI's passfile
# parameter, so no secret ever appears in the repository, a URI or a log line.
PGPASS_RELATIVE = Path("secrets") / "pgpass"
# The local stack's certificate authority (deploy/stack/tls.py makes it): PostgreSQL clients
# check the server's certificate and name against it (libpq's sslmode=verify-full).
STACK_CA_RELATIVE = Path("secrets") / "tls" / "ca.pem"
# The local stack's client properties files (mode 0600): one per service principal, written by
# `tipsync stack up`, and one per enrolled agency, written by `tipsync agency enroll`.
CLIENTS_RELATIVE = Path("secrets") / "clients"
AGENCY_CLIENTS_RELATIVE = Path("secrets") / "agencies"
# The principal whose local file a command uses when it names none of its own (stack, topics,
# contract, benchmarks, the demo's driver, tests' own clients).
DEFAULT_PRINCIPAL: Final = "admin"

DEFAULT_POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
DEFAULT_STREAM_METRICS_PORT = 19100  # worker i of `tipsync stream --workers N` uses + i
DEFAULT_SINK_METRICS_PORT = 19101
DEFAULT_OPERATIONS_METRICS_PORT = 19102
DAY_MS: Final = 24 * 60 * 60 * 1000
# A topic's replication factor when REPLICATION_FACTOR is unset: Kafka's "-1" of CreateTopics,
# the cluster's own ``default.replication.factor`` (1 on one node; 3 on the local stack's
# cluster, ``stack up --brokers 3``, which also sets min.insync.replicas=2). Who sizes the
# cluster sets it, once, on the brokers.
CLUSTER_DEFAULT_REPLICATION: Final = -1
# The stream's resolve snapshots (streams.snapshot.SnapshotPolicy has the same defaults; the
# settings-surface test keeps them equal until the stream takes them from here).
DEFAULT_SNAPSHOT_EVERY_RECORDS = 100_000
DEFAULT_SNAPSHOT_EVERY_SECONDS = 900
# KIP-368: the longest a Kafka client connection stays authenticated before the broker wants
# it authenticated again (docs/SECURITY.md, "Re-authentication"): librdkafka re-authenticates
# in place; aiokafka (the stream's faust) cannot, so its connection is closed and reopened,
# with a few logged connection errors each time: ten minutes bounds a revoked credential's
# open connections without filling the stream's log.
DEFAULT_KAFKA_REAUTH_MS = 600_000

# ---------------------------------------------------------------------------------------------
# The names. Import these to mention a variable (messages, help texts), never spell them out.

KAFKA_BOOTSTRAP: Final = "TIPSYNC_KAFKA_BOOTSTRAP"
REGISTRY_URL: Final = "TIPSYNC_REGISTRY_URL"
DATABASE_URL: Final = "TIPSYNC_DATABASE_URL"
HOME: Final = "TIPSYNC_HOME"
CACHE: Final = "TIPSYNC_CACHE"
JAVA_HOME: Final = "TIPSYNC_JAVA_HOME"
POSTGRES_BIN: Final = "TIPSYNC_POSTGRES_BIN"
AGENCIES: Final = "TIPSYNC_AGENCIES"
PARTITIONS: Final = "TIPSYNC_PARTITIONS"
REPLICATION_FACTOR: Final = "TIPSYNC_REPLICATION_FACTOR"
AGENCY_RETENTION_MS: Final = "TIPSYNC_AGENCY_RETENTION_MS"
DLQ_RETENTION_MS: Final = "TIPSYNC_DLQ_RETENTION_MS"
STREAM_METRICS_PORT: Final = "TIPSYNC_STREAM_METRICS_PORT"
SINK_METRICS_PORT: Final = "TIPSYNC_SINK_METRICS_PORT"
OPERATIONS_METRICS_PORT: Final = "TIPSYNC_OPERATIONS_METRICS_PORT"
METRICS_ADDRESS: Final = "TIPSYNC_METRICS_ADDRESS"
RESOLVE_MODEL: Final = "TIPSYNC_RESOLVE_MODEL"
RESOLVE_SNAPSHOT_RECORDS: Final = "TIPSYNC_RESOLVE_SNAPSHOT_RECORDS"
RESOLVE_SNAPSHOT_SECONDS: Final = "TIPSYNC_RESOLVE_SNAPSHOT_SECONDS"
CLIENT_CONFIG: Final = "TIPSYNC_CLIENT_CONFIG"
STEWARD_CONNECTION: Final = "TIPSYNC_STEWARD_CONNECTION"
KAFKA_REAUTH_MS: Final = "TIPSYNC_KAFKA_REAUTH_MS"


@dataclass(frozen=True)
class Variable:
    """One environment variable of tipsync, as the README's Configuration table shows it:
    ``default_text`` and ``meaning`` are that table's cells (Markdown), for people to read;
    the typed readers below hold the defaults the code uses."""

    name: str
    default_text: str
    meaning: str


VARIABLES: Final[tuple[Variable, ...]] = (
    Variable(
        KAFKA_BOOTSTRAP, f"`{LOOPBACK}:{DEFAULT_KAFKA_PORT}`",
        "Kafka bootstrap servers; the local broker listens on this port (its controller on"
        " port + 1)",
    ),
    Variable(
        REGISTRY_URL, f"`https://{LOOPBACK}:{DEFAULT_REGISTRY_PORT}/apis/ccompat/v7`",
        "Confluent-compatible registry API; the local registry serves HTTPS only, on this"
        " port (management on port + 1), to authenticated users (docs/SECURITY.md)",
    ),
    Variable(
        DATABASE_URL,
        f"`postgresql://tipsync@{LOOPBACK}:{DEFAULT_POSTGRES_PORT}/tipsync"
        f"?passfile=<home>/{PGPASS_RELATIVE.as_posix()}&sslmode=verify-full"
        f"&sslrootcert=<home>/{STACK_CA_RELATIVE.as_posix()}`",
        "the reconciled store, as its owner (`db migrate`); the local PostgreSQL listens on"
        " this port. `sink` connects to the same store as `tipsync_sink`, `analyst` as"
        " `tipsync_admin` (docs/SECURITY.md)",
    ),
    Variable(
        CLIENT_CONFIG,
        "the local stack's file of the command's principal (`<home>/secrets/clients/"
        "<principal>.properties`; `produce`: `<home>/secrets/agencies/<agency>.properties`)",
        "the Kafka client properties file every command reads (`--client-config` overrides):"
        " bootstrap servers, security protocol, SASL and TLS, `schema.registry.*`; its"
        " bootstrap and registry URL win over the two variables above (docs/SECURITY.md)",
    ),
    Variable(
        STEWARD_CONNECTION, "none (`review` then needs `--connection FILE`)",
        "the steward's own connection file (`tipsync analyst add NAME --steward ... --out"
        " FILE`): `tipsync review` reads and decides as that login, under its clearance and"
        " the read audit (`--connection` overrides; docs/ANALYSTS.md)",
    ),
    Variable(HOME, "`.tipsync/` in the checkout (else `~/.tipsync`)", "state folder"),
    Variable(CACHE, f"`${HOME}/cache`", "downloaded jars and archives"),
    Variable(
        JAVA_HOME, "first suitable JDK found",
        "the only Java used for Kafka (17+) and the registry (21+ for 3.3, else 3.0.9)",
    ),
    Variable(POSTGRES_BIN, f"`{DEFAULT_POSTGRES_BIN}`", "PostgreSQL server binaries"),
    Variable(
        AGENCIES, "`deploy/agencies.yaml`",
        "the agency registry: who may publish, and how far each agency is trusted",
    ),
    Variable(PARTITIONS, "`6`", "partitions of every topic `tipsync topics create` makes"),
    Variable(
        REPLICATION_FACTOR, "the cluster's `default.replication.factor`",
        "replicas of every topic tipsync creates (the local stack: 1; with `stack up"
        " --brokers 3`: 3, and `min.insync.replicas=2`)",
    ),
    Variable(
        AGENCY_RETENTION_MS, f"`{30 * DAY_MS}` (30 days)", "how long agency change events stay"
    ),
    Variable(
        DLQ_RETENTION_MS, f"`{30 * DAY_MS}` (30 days)",
        "how long dead letters stay for an operator to act",
    ),
    Variable(
        STREAM_METRICS_PORT, f"`{DEFAULT_STREAM_METRICS_PORT}`",
        "Prometheus endpoint of `tipsync stream` on 127.0.0.1 (worker i: port + i; 0: none;"
        " `--metrics-port` overrides)",
    ),
    Variable(
        SINK_METRICS_PORT, f"`{DEFAULT_SINK_METRICS_PORT}`",
        "Prometheus endpoint of `tipsync sink` on 127.0.0.1 (0: none; `--metrics-port`"
        " overrides)",
    ),
    Variable(
        OPERATIONS_METRICS_PORT, f"`{DEFAULT_OPERATIONS_METRICS_PORT}`",
        "Prometheus endpoint of `tipsync monitor` on 127.0.0.1 (`--port` overrides)",
    ),
    Variable(
        METRICS_ADDRESS, f"`{LOOPBACK}`",
        "the address every metrics endpoint (stream, sink, monitor) listens on; `0.0.0.0`"
        " or a pod's address for a Prometheus on another machine (the endpoints have no"
        " authentication: expose them on a monitoring network only)",
    ),
    Variable(
        RESOLVE_MODEL, "the reasoned default weights",
        "the scoring model file resolve uses (`tipsync model fit`; `tipsync stream --model`"
        " overrides)",
    ),
    Variable(
        RESOLVE_SNAPSHOT_RECORDS, f"`{DEFAULT_SNAPSHOT_EVERY_RECORDS}`",
        "a resolve snapshot after this many resolve messages (0 turns snapshots off)",
    ),
    Variable(
        RESOLVE_SNAPSHOT_SECONDS, f"`{DEFAULT_SNAPSHOT_EVERY_SECONDS}`",
        "a resolve snapshot after this many seconds, if anything changed",
    ),
    Variable(
        KAFKA_REAUTH_MS, f"`{DEFAULT_KAFKA_REAUTH_MS}` (10 minutes)",
        "the local broker's `connections.max.reauth.ms`: an open connection must authenticate"
        " again within this time, so a revoked or rotated credential's connections end"
        " within it (read when Kafka starts; docs/SECURITY.md, Re-authentication)",
    ),
)


def _environment(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    """The mapping a reader reads: the one given (tests, a child's environment) or the
    process environment."""
    return os.environ if environ is None else environ


# ---------------------------------------------------------------------------------------------
# Connections and state: Kafka, the registry, PostgreSQL, the state folder and the cache.


def project_root() -> Path | None:
    """The source checkout this code runs from, when it runs from one (editable install)."""
    candidate = Path(__file__).resolve().parents[1]
    return candidate if (candidate / "pyproject.toml").is_file() else None


def default_home() -> Path:
    root = project_root()
    return (root / ".tipsync") if root else (Path.home() / ".tipsync")


@dataclass(frozen=True)
class Settings:
    """Where tipsync finds Kafka, the registry, PostgreSQL and its own state. ``client`` is
    how every Kafka and registry client connects (``schemas.client_config``)."""

    home: Path
    cache: Path
    kafka_bootstrap: str
    registry_url: str
    database_url: str
    # the client properties file given explicitly (CLIENT_CONFIG or --client-config)
    client_properties: ClientConfig | None = None
    # without one: the local stack's file of the command's principal (``load_settings``
    # always names one); None only for Settings built in code: PLAINTEXT, no registry auth
    local_client_file: Path | None = None

    @cached_property
    def client(self) -> ClientConfig:
        """The configuration of every Kafka and registry client: the file given explicitly,
        else the local stack's file of this command's principal (read when first needed, so
        ``stack up`` can write it first). ``ClientConfigError`` when neither exists."""
        if self.client_properties is not None:
            return self.client_properties
        path = self.local_client_file
        if path is None:
            return ClientConfig.plain(self.kafka_bootstrap, self.registry_url)
        if not path.is_file():
            raise ClientConfigError(
                f"no Kafka client properties file: neither --client-config nor {CLIENT_CONFIG}"
                f" names one, and the local stack's file for this command, {path}, does not"
                " exist. On the machine that runs the local stack, `tipsync stack up` writes"
                " it (`tipsync agency enroll <id>` an agency's); elsewhere pass the file your"
                f" administrator issued with --client-config FILE or {CLIENT_CONFIG}"
                " (docs/SECURITY.md)"
            )
        issued = load_client_config(
            path, default_bootstrap=self.kafka_bootstrap,
            default_registry_url=self.registry_url, named_by="the local stack",
        )
        # The variables say where the local stack is; its file says who this command is.
        return replace(issued, bootstrap=self.kafka_bootstrap, registry_url=self.registry_url)

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


def local_database_url(home: Path, port: int = DEFAULT_POSTGRES_PORT) -> str:
    """The store of the local stack whose state folder is ``home``, as its owner: the
    password from the stack's pgpass, the server verified against the stack's CA."""
    return (
        f"postgresql://tipsync@{LOOPBACK}:{port}/tipsync?passfile={home / PGPASS_RELATIVE}"
        f"&sslmode=verify-full&sslrootcert={home / STACK_CA_RELATIVE}"
    )


# The local file this process's commands use when no file is named (``use_local_principal``).
_command_credentials: Path = CLIENTS_RELATIVE / f"{DEFAULT_PRINCIPAL}.properties"


def local_client_file(home: Path, principal: str) -> Path:
    """The local stack's client properties file of a service principal."""
    return home / CLIENTS_RELATIVE / f"{principal}.properties"


def local_agency_file(home: Path, agency_id: str) -> Path:
    """The local stack's client properties file of an enrolled agency."""
    return home / AGENCY_CLIENTS_RELATIVE / f"{agency_id}.properties"


def use_local_principal(principal: str, *, agency: bool = False) -> None:
    """Which local file this process uses when neither --client-config nor CLIENT_CONFIG
    names one: the service principal's (``stream``, ``sink``, ``monitor``, ``steward``,
    ``admin``) or, with ``agency``, the enrolled agency's. The ``tipsync`` command sets it
    from the command it runs; it never travels to the processes a command starts (each
    ``tipsync`` process picks its own), unlike an explicit file (``connection_environment``)."""
    global _command_credentials
    folder = AGENCY_CLIENTS_RELATIVE if agency else CLIENTS_RELATIVE
    _command_credentials = folder / f"{principal}.properties"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from the environment (or the mapping given), with local defaults."""
    env = _environment(environ)
    home = Path(env.get(HOME) or default_home()).expanduser().resolve()
    bootstrap = env.get(KAFKA_BOOTSTRAP) or f"{LOOPBACK}:{DEFAULT_KAFKA_PORT}"
    registry = (
        env.get(REGISTRY_URL)
        or f"https://{LOOPBACK}:{DEFAULT_REGISTRY_PORT}/apis/ccompat/v7"
    ).rstrip("/")
    database = env.get(DATABASE_URL) or local_database_url(home)
    cache = Path(env.get(CACHE) or home / "cache").expanduser().resolve()
    if "@" in urlsplit(registry).netloc:
        raise ClientConfigError(
            f"{REGISTRY_URL} carries credentials in the URL, where logs and messages would"
            f" show them; remove them and put them in a client properties file"
            f" ({CLIENT_CONFIG}, docs/SECURITY.md)"
        )
    client = None
    client_file = env.get(CLIENT_CONFIG, "").strip()
    if client_file:
        client = load_client_config(
            Path(client_file), default_bootstrap=bootstrap, default_registry_url=registry,
            named_by=f"{CLIENT_CONFIG} or --client-config",
        )
        bootstrap, registry = client.bootstrap, client.registry_url
    return Settings(
        home=home,
        cache=cache,
        kafka_bootstrap=bootstrap,
        registry_url=registry,
        database_url=database,
        client_properties=client,
        local_client_file=home / _command_credentials,
    )


def use_client_config(path: Path) -> None:
    """Make ``path`` the client properties file of this process and of every process it
    starts (``--client-config`` wins over the variable this way): only the path travels,
    never a secret on a command line."""
    os.environ[CLIENT_CONFIG] = str(Path(path).expanduser().resolve())


def connection_environment(settings: Settings) -> dict[str, str]:
    """The variables that make ``load_settings`` return ``settings``: what a process passes
    to the ``tipsync`` processes it starts so they use the same stack (the benchmarks'
    private stacks). The client properties file travels by its path when it was given
    explicitly; the local file of a command's principal never travels (empty: each started
    ``tipsync`` process uses its own principal's)."""
    source = settings.client_properties.source if settings.client_properties else None
    return {
        HOME: str(settings.home),
        CACHE: str(settings.cache),
        KAFKA_BOOTSTRAP: settings.kafka_bootstrap,
        REGISTRY_URL: settings.registry_url,
        DATABASE_URL: settings.database_url,
        CLIENT_CONFIG: str(source) if source else "",
    }


# ---------------------------------------------------------------------------------------------
# The local stack's programs.


def steward_connection_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The connection file of the steward using this shell (``tipsync review``), or None."""
    chosen = _environment(environ).get(STEWARD_CONNECTION, "").strip()
    return Path(chosen).expanduser() if chosen else None


def java_home(environ: Mapping[str, str] | None = None) -> Path | None:
    """The Java installation the user chose for the stack, or None to let the stack look
    for one (JAVA_HOME, PATH, /usr/lib/jvm)."""
    chosen = _environment(environ).get(JAVA_HOME)
    return Path(chosen) if chosen else None


def postgres_bin(environ: Mapping[str, str] | None = None) -> Path:
    """The folder of the PostgreSQL 15 server programs (initdb, pg_ctl, postgres), read when
    the stack needs them rather than when the module is imported."""
    return Path(_environment(environ).get(POSTGRES_BIN, str(DEFAULT_POSTGRES_BIN)))


# ---------------------------------------------------------------------------------------------
# The agency registry and the topic plan.


def agencies_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The agency registry file the user named, or None for the one in the checkout
    (schemas.agencies knows where that is)."""
    configured = _environment(environ).get(AGENCIES)
    return Path(configured).expanduser() if configured else None


@dataclass(frozen=True)
class TopicSettings:
    """How ``tipsync topics create`` (and the stream app, for its own topics) sizes topics."""

    partitions: int = 6
    replication_factor: int = CLUSTER_DEFAULT_REPLICATION  # or a positive number
    agency_retention_ms: int = 30 * DAY_MS
    dlq_retention_ms: int = 30 * DAY_MS

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> TopicSettings:
        """The sizing the environment asks for; a value that is not a positive whole number
        is refused with the variable named."""
        env = _environment(environ)
        defaults = cls()
        return cls(
            partitions=_positive(env, PARTITIONS, defaults.partitions),
            replication_factor=_positive(env, REPLICATION_FACTOR, defaults.replication_factor),
            agency_retention_ms=_positive(env, AGENCY_RETENTION_MS, defaults.agency_retention_ms),
            dlq_retention_ms=_positive(env, DLQ_RETENTION_MS, defaults.dlq_retention_ms),
        )


def kafka_reauth_ms(environ: Mapping[str, str] | None = None) -> int:
    """The local broker's ``connections.max.reauth.ms`` (KIP-368) on its client listener."""
    return _positive(_environment(environ), KAFKA_REAUTH_MS, DEFAULT_KAFKA_REAUTH_MS)


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    """A positive whole number from ``name``, or ``default`` when it is unset or empty."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise ValueError(f"{name}='{raw}' is not a positive whole number (default {default})")
    return int(raw)


# ---------------------------------------------------------------------------------------------
# Metrics endpoints.


def metrics_port(
    variable: str, default: int, option: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int | None:
    """The port a process serves its Prometheus metrics on: the command-line option first,
    then the environment variable, then the default; None when it is 0 (no endpoint).
    The one rule for every ``*_METRICS_PORT`` variable (stream, sink, monitor)."""
    if option is None:
        env = _environment(environ)
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


def stream_metrics_port(
    option: int | None = None, environ: Mapping[str, str] | None = None
) -> int | None:
    """A stream worker's base port: ``--metrics-port``, then STREAM_METRICS_PORT, then 19100."""
    return metrics_port(STREAM_METRICS_PORT, DEFAULT_STREAM_METRICS_PORT, option, environ)


def sink_metrics_port(
    option: int | None = None, environ: Mapping[str, str] | None = None
) -> int | None:
    """The sink's port: ``--metrics-port``, then SINK_METRICS_PORT, then 19101."""
    return metrics_port(SINK_METRICS_PORT, DEFAULT_SINK_METRICS_PORT, option, environ)


def operations_metrics_port(
    option: int | None = None, environ: Mapping[str, str] | None = None
) -> int | None:
    """The monitor's port: ``--port``, then OPERATIONS_METRICS_PORT, then 19102."""
    return metrics_port(OPERATIONS_METRICS_PORT, DEFAULT_OPERATIONS_METRICS_PORT, option, environ)


def metrics_address(environ: Mapping[str, str] | None = None) -> str:
    """The address the metrics endpoints listen on: METRICS_ADDRESS, else loopback. An IP
    address only (``0.0.0.0``, ``::``, an interface's), so a typo fails here, named."""
    configured = _environment(environ).get(METRICS_ADDRESS, "").strip()
    if not configured:
        return LOOPBACK
    try:
        ipaddress.ip_address(configured)
    except ValueError:
        raise ValueError(
            f"{METRICS_ADDRESS}='{configured}' is not an IP address; set e.g. {LOOPBACK}"
            " (this machine only, the default) or 0.0.0.0 (every interface)"
        ) from None
    return configured


# ---------------------------------------------------------------------------------------------
# The stream's resolve stage.


@dataclass(frozen=True)
class ResolveSettings:
    """What the environment sets for the resolve stage; None where it sets nothing (the
    stream's own defaults, or its command-line options, then apply)."""

    model_path: str | None = None
    snapshot_every_records: int | None = None
    snapshot_every_seconds: int | None = None

    def options(self) -> dict[str, str | int]:
        """The values set, by the names ``streams.app.StreamOptions`` gives them."""
        values = {
            "model_path": self.model_path,
            "snapshot_every_records": self.snapshot_every_records,
            "snapshot_every_seconds": self.snapshot_every_seconds,
        }
        return {name: value for name, value in values.items() if value is not None}


def resolve_settings(environ: Mapping[str, str] | None = None) -> ResolveSettings:
    """The resolve stage's model file and snapshot cadence from the environment; a cadence
    that is not a whole number is refused with the variable named and an example."""
    env = _environment(environ)
    cadence: dict[str, int] = {}
    for name in (RESOLVE_SNAPSHOT_RECORDS, RESOLVE_SNAPSHOT_SECONDS):
        text = env.get(name)
        if text:
            if not text.isdigit():
                raise ValueError(
                    f"{name}='{text}' is not a whole number; set e.g. 100000 records or "
                    f"900 seconds ({RESOLVE_SNAPSHOT_RECORDS}=0 turns snapshots off)"
                )
            cadence[name] = int(text)
    return ResolveSettings(
        model_path=env.get(RESOLVE_MODEL) or None,
        snapshot_every_records=cadence.get(RESOLVE_SNAPSHOT_RECORDS),
        snapshot_every_seconds=cadence.get(RESOLVE_SNAPSHOT_SECONDS),
    )
