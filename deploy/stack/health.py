"""What ``tipsync stack status`` says of each part: up, DOWN, or DEGRADED when the part runs
but cannot be used, with a sentence naming the problem and its fix.

DEGRADED covers what an operator meets after an interrupted change: Kafka that answers but
refuses the admin's file (the admin's credential in the metadata log is not the secret of
``principals.json``), a registry that answers but refuses the admin's credentials (a realm
older than the user store) or fails (HTTP 5xx), PostgreSQL that accepts connections but
refuses the store's owner or lacks migrations this code needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import httpx
import psycopg

from deploy.stack.admin_credential import admin_refused
from deploy.stack.kafka import Kafka
from deploy.stack.postgres import Postgres
from deploy.stack.principals import store_path
from deploy.stack.registry import Registry
from deploy.stack.services import accepts_tcp
from schemas import config
from schemas.client_config import RegistryConnection
from sinks.migrate import MigrationError, require_migrated

State = Literal["up", "degraded", "down"]


@dataclass(frozen=True)
class Health:
    state: State
    problem: str | None = None  # what is wrong and how to fix it, for degraded and down

    @property
    def up(self) -> bool:
        return self.state == "up"


UP = Health("up")


def _safely(check) -> bool:  # type: ignore[no-untyped-def]
    try:
        return bool(check())
    except Exception:  # noqa: BLE001 - any failure to answer is "not up"
        return False


def kafka_health(kafka: Kafka) -> Health:
    if _safely(kafka.is_up):
        return UP
    listening = [node for node in kafka.nodes if accepts_tcp("127.0.0.1", node.port)]
    if kafka.local and not listening:
        return Health("down", "no Kafka node listens; run `tipsync stack up`")
    if _safely(lambda: admin_refused(kafka.admin_client())):
        if not kafka.local:
            return Health("degraded", f"Kafka at {kafka.address} answers but refuses the"
                          " credentials of this command's client file; pass the file your"
                          f" administrator issued (--client-config or {config.CLIENT_CONFIG})")
        return Health(
            "degraded",
            f"Kafka answers but refuses the admin's file"
            f" ({config.local_client_file(kafka.layout.home, 'admin')}): the broker's admin"
            f" credential is not the secret of {store_path(kafka.layout)} (an interrupted"
            " `tipsync stack rotate admin`); run `tipsync stack down` then `tipsync stack up`,"
            " which sets it, logged in with the replaced secret the broker still holds. If the"
            " services' files are refused too, an older `tipsync agency revoke` deleted a"
            " credential and this Kafka refuses every login after a restart: back up, then"
            " `tipsync stack reset --yes` (docs/SECURITY.md)",
        )
    if kafka.local and len(listening) < len(kafka.nodes):
        missing = [node.node_id for node in kafka.nodes if node not in listening]
        return Health("degraded", f"Kafka node(s) {', '.join(map(str, missing))} of"
                      f" {len(kafka.nodes)} do not listen; run `tipsync stack up` to start them")
    return Health("degraded", "Kafka listens but does not answer a metadata request within"
                  f" 5 s (starting, or stuck: see {kafka.layout.log('kafka')})")


def registry_health(registry: Registry, connection: RegistryConnection | None = None) -> Health:
    """``connection``: the credentials to check (default: the stack's own, the admin's)."""
    if registry.local and not accepts_tcp("127.0.0.1", registry.port):
        return Health("down", "the registry does not listen; run `tipsync stack up`")
    connection = connection or registry.connection()
    try:
        response = httpx.get(f"{connection.url}/subjects", auth=connection.auth,
                             verify=connection.verify, timeout=5)
    except httpx.ConnectError as error:
        return Health("degraded", f"the registry listens but no verified TLS connection"
                      f" is made ({error}); if the stack's CA was made anew, restart it with"
                      " `tipsync stack down` then `tipsync stack up`")
    except httpx.HTTPError as error:
        return Health("degraded", f"the registry listens but does not answer ({error});"
                      f" starting, or stuck: see {registry.layout.log('registry')}")
    if response.status_code == 200:
        return UP
    if response.status_code in (401, 403):
        return Health("degraded", f"the registry refuses the admin's credentials (HTTP"
                      f" {response.status_code}): its users are older than"
                      f" {registry.layout.secrets}; run `tipsync stack up`, which restarts a"
                      " registry whose users are stale")
    return Health("degraded", f"the registry answers HTTP {response.status_code} to a read;"
                  f" see {registry.layout.log('registry')} (its storage is in PostgreSQL: is"
                  " that up?), then `tipsync stack down` and `tipsync stack up`")


def postgres_health(postgres: Postgres) -> Health:
    if postgres.local and not accepts_tcp("127.0.0.1", postgres.port):
        return Health("down", "PostgreSQL does not listen; run `tipsync stack up`")
    try:
        with psycopg.connect(postgres.settings.database_url, connect_timeout=3) as connection:
            connection.execute("select 1")
    except psycopg.Error as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return Health("degraded", f"PostgreSQL listens but refuses the store's owner"
                      f" ({first}); check {config.DATABASE_URL} and its passfile")
    try:
        require_migrated(postgres.settings.database_url)
    except MigrationError as error:
        return Health("degraded", str(error).replace("before starting the sink", "")
                      .replace(", then start the sink again", "").strip())
    return UP
