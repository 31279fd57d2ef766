"""The files deploy/compose.yaml mounts: configuration with secrets, made by tipsync.

``tipsync deploy compose`` writes them into ``compose/`` of the state folder (folders 0700, files
0600), from the state folder's secrets (``manifests_secrets``), so that compose.yaml holds no
secret and no secret is on a command line:

``kafka/``      server.properties: the local stack's broker settings (``deploy.stack.kafka``,
                the same text), with the container's listeners and paths; format.args (the
                storage format with the admin's SCRAM credential, read by the JVM as an
                argument file, as the local stack does); tls/ (key and chain, CA)
``registry/``   realm.properties (the user store's digests and roles, the datasource
                password); tls/
``postgres/``   10-roles.sql (the login roles with SCRAM verifiers, never a password),
                admin-password, pg_hba.conf (the local stack's rules: TLS and SCRAM for every
                address but loopback); tls/
``clients/``    each service principal's client properties file, pgpass, ca.pem: what the
                tipsync containers mount at /etc/tipsync/clients (the administrator's own
                files, naming the published ports, are the state folder's, as ``stack up``
                writes them)
``grafana/``    admin-password

Each container runs as its image's user, who must own its folder's files (mode 0600; the
container engine, not that user, resolves the bind mount's path): run as root, the command
gives each folder to that user (``OWNERS``); otherwise it says what to change.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from deploy.operations.manifests_secrets import (
    client_files,
    database_passwords,
    principal_secrets,
    realm_text,
    write_files,
)
from deploy.stack.kafka import Kafka, new_cluster_id
from deploy.stack.layout import StateLayout
from deploy.stack.postgres import ADMIN_ROLE, APP_ROLE, PG_HBA, REGISTRY_ROLE, Postgres
from deploy.stack.principals import ADMIN, new_secret, service_secrets
from deploy.stack.stack import LocalStack
from deploy.stack.tls import ensure_tls
from schemas.config import DEFAULT_KAFKA_PORT, Settings
from sinks.roles import SINK_ROLE

# The compose services' host names, on the compose network (the server certificate's names).
SERVICE_HOSTS = ("kafka", "registry", "postgres", "console")
INTERNAL_KAFKA_PORT = 9092
CONTROLLER_PORT = 9093
REGISTRY_PORT = 18081
# The user each image runs as (apache/kafka: appuser; postgres: postgres; apicurio: 1001;
# grafana: 472; tipsync: deploy/image/Containerfile).
OWNERS = {"kafka": 1000, "postgres": 999, "registry": 1001, "clients": 10001, "grafana": 472}
KAFKA_CONFIG = "/etc/tipsync/kafka"
KAFKA_DATA = "/var/lib/kafka/data"
SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
# The login roles of the store and their attributes, as the local stack makes them
# (deploy.stack.postgres: the owner may create the tests' databases; the others nothing).
ROLE_ATTRIBUTES = {
    APP_ROLE: "LOGIN CREATEDB NOCREATEROLE",
    SINK_ROLE: "LOGIN NOCREATEDB NOCREATEROLE",
    REGISTRY_ROLE: "LOGIN NOCREATEDB NOCREATEROLE",
}


@dataclass(frozen=True)
class ComposeDeployment:
    """Where clients outside the compose network reach Kafka (``advertised``: this machine's
    name and the published port), and the names the server certificate must carry."""

    advertised_host: str = "127.0.0.1"
    advertised_port: int = DEFAULT_KAFKA_PORT

    @property
    def certificate_names(self) -> tuple[str, ...]:
        return (*SERVICE_HOSTS, self.advertised_host)


def compose_folder(settings: Settings) -> Path:
    return settings.home / "compose"


def local_broker_properties(settings: Settings) -> dict[str, str]:
    """The local stack's broker settings (``deploy.stack.kafka``), key -> value."""
    text = Kafka(settings, StateLayout.of(settings))._properties()  # noqa: SLF001
    return dict(line.split("=", 1) for line in text.splitlines()
                if line and not line.startswith("#"))


def broker_properties(settings: Settings, where: ComposeDeployment) -> dict[str, str]:
    """The local broker's settings with the container's listeners and paths: ``SASL_SSL``
    inside the compose network (``kafka:9092``), ``EXTERNAL`` (also SASL_SSL with SCRAM) on the
    published port for clients elsewhere, the controller on the network only."""
    properties = local_broker_properties(settings)
    secret = service_secrets(StateLayout.of(settings))[ADMIN]
    properties.update({
        "listeners": f"SASL_SSL://:{INTERNAL_KAFKA_PORT},EXTERNAL://:{where.advertised_port},"
                     f"CONTROLLER://:{CONTROLLER_PORT}",
        "advertised.listeners": f"SASL_SSL://kafka:{INTERNAL_KAFKA_PORT},"
                                f"EXTERNAL://{where.advertised_host}:{where.advertised_port}",
        "listener.security.protocol.map":
            "SASL_SSL:SASL_SSL,EXTERNAL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
        "listener.name.external.sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.external.scram-sha-512.sasl.jaas.config":
            f'{SCRAM} required username="{ADMIN}" password="{secret}";',
        "controller.quorum.voters": f"1@kafka:{CONTROLLER_PORT}",
        "log.dirs": KAFKA_DATA,
        "ssl.keystore.location": f"{KAFKA_CONFIG}/tls/server-bundle.pem",
        "ssl.truststore.location": f"{KAFKA_CONFIG}/tls/ca.pem",
    })
    return properties


def format_arguments(settings: Settings) -> str:
    """StorageTool's arguments with the admin's SCRAM credential (``java @file``)."""
    secret = service_secrets(StateLayout.of(settings))[ADMIN]
    return " ".join([
        "kafka.tools.StorageTool", "format", "--ignore-formatted", "-t", new_cluster_id(),
        "-c", f"{KAFKA_CONFIG}/server.properties",
        "--add-scram", f"SCRAM-SHA-512=[name={ADMIN},password={secret}]",
    ]) + "\n"


def roles_sql(passwords: dict[str, str]) -> str:
    """The store's login roles with SCRAM verifiers: the server never sees a password."""
    # imported here: deploy.operations.analysts and deploy.stack import each other, and
    # only deploy.stack's side may be imported first
    from deploy.stack.scram import scram_verifier

    lines = ["-- Made by `tipsync deploy compose`; SCRAM verifiers only, no password."]
    lines += [f"CREATE ROLE {role} {attributes} PASSWORD '{scram_verifier(passwords[role])}';"
              for role, attributes in ROLE_ATTRIBUTES.items()]
    return "\n".join(lines) + "\n"


def _admin_password(settings: Settings) -> str:
    passwords = Postgres(settings, StateLayout.of(settings))._ensure_passwords()  # noqa: SLF001
    return passwords[ADMIN_ROLE]


def compose_files(settings: Settings, where: ComposeDeployment) -> dict[str, dict[str, str]]:
    """Folder -> file -> text of everything compose.yaml mounts."""
    layout = StateLayout.of(settings)
    tls = ensure_tls(layout.secrets, where.certificate_names)
    chain = tls.server_certificate.read_text(encoding="utf-8")
    key = tls.server_key.read_text(encoding="utf-8")
    ca = tls.ca.read_text(encoding="utf-8")
    passwords = database_passwords(settings)
    kafka_properties = broker_properties(settings, where)
    grafana = compose_folder(settings) / "grafana" / "admin-password"
    return {
        "kafka": {
            "server.properties": "# Made by `tipsync deploy compose`: holds the admin's"
                                 " secret.\n" + "".join(
                f"{name}={value}\n" for name, value in kafka_properties.items()),
            "format.args": format_arguments(settings),
            "tls/server-bundle.pem": tls.server_bundle.read_text(encoding="utf-8"),
            "tls/ca.pem": ca,
        },
        "registry": {
            "realm.properties": realm_text(
                settings, {"apicurio.datasource.password": passwords[REGISTRY_ROLE]}
            ),
            "tls/server.pem": chain, "tls/server-key.pem": key, "tls/ca.pem": ca,
        },
        "postgres": {
            "10-roles.sql": roles_sql(passwords),
            "admin-password": _admin_password(settings),
            "pg_hba.conf": PG_HBA,
            "tls/server.pem": chain, "tls/server-key.pem": key,
        },
        "clients": client_files(
            settings, principal_secrets(settings, ()),
            f"kafka:{INTERNAL_KAFKA_PORT}", f"https://registry:{REGISTRY_PORT}/apis/ccompat/v7",
            "postgres",
        ),
        "grafana": {
            # kept once made: Grafana stores it hashed in its database at first start
            "admin-password": grafana.read_text(encoding="utf-8") if grafana.is_file()
            else new_secret(),
        },
    }


def write_compose_files(settings: Settings, where: ComposeDeployment) -> list[str]:
    """Write the files; returns what the user must still do (empty when run as root).

    First what ``stack up`` issues on the administrator's machine (the services' client files
    in the state folder, naming the published ports, and every registered agency's future
    secret, so that the registry's realm knows it before the agency is enrolled)."""
    ensure_tls(StateLayout.of(settings).secrets, where.certificate_names)
    LocalStack(settings).issue_service_credentials()
    base = compose_folder(settings)
    todo = []
    for folder, files in compose_files(settings, where).items():
        target = base / folder
        write_files(target, files)
        owner = OWNERS[folder]
        if os.geteuid() == 0:
            for path in [target, *target.rglob("*")]:
                shutil.chown(path, user=owner, group=owner)
        else:
            todo.append(f"sudo chown -R {owner}:{owner} {target}")
    return todo
