"""The secrets of a deployment, as files and Kubernetes Secrets, never in the repository.

Every secret comes from the one place the local stack takes it from: the CA and server
certificate from ``deploy.stack.tls``, the principals' secrets (Kafka SCRAM password and
registry password in one) from ``deploy.stack.principals``, the registry's realm from
``deploy.stack.registry_users``, PostgreSQL's role passwords from the password file the local
stack keeps (``Postgres`` makes them). The deployment's state folder (``schemas.config.HOME`` on
the administrator's machine) holds them; what this module writes is 0600 in 0700 folders.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import yaml

from deploy.operations.manifests_cluster import (
    CA_SECRET,
    CLIENTS_SECRET,
    KAFKA_CLUSTER,
    REALM_SECRET,
    SERVER_TLS_SECRET,
    Deployment,
    password_secret,
)
from deploy.stack import registry_users
from deploy.stack.clients import properties_text, write_private
from deploy.stack.layout import StateLayout, private_folder
from deploy.stack.postgres import APP_ROLE, REGISTRY_ROLE, Postgres
from deploy.stack.principals import (
    SERVICE_PRINCIPALS,
    agency_principal,
    agency_secret,
    service_secrets,
)
from deploy.stack.tls import TlsFiles, ensure_tls
from schemas.config import Settings
from sinks.roles import SINK_ROLE

DATABASE_ROLES = (APP_ROLE, SINK_ROLE, REGISTRY_ROLE)
# Where the tipsync image finds its files (deploy/image/Containerfile, the manifests).
CLIENTS_MOUNT = "/etc/tipsync/clients"


def principal_secrets(settings: Settings, agency_ids: Iterable[str]) -> dict[str, str]:
    """Principal -> secret of every service and of every agency given (made once, kept)."""
    layout = StateLayout.of(settings)
    found = dict(service_secrets(layout))
    found.update({agency_principal(agency_id): agency_secret(layout, agency_id)
                  for agency_id in agency_ids})
    return found


def database_passwords(settings: Settings) -> dict[str, str]:
    """Role -> password of the store's login roles, from the local stack's password file
    (made there when missing, by the code that makes them for ``stack up``)."""
    postgres = Postgres(settings, StateLayout.of(settings))
    passwords = postgres._ensure_passwords()  # noqa: SLF001 - the one place they are made
    return {role: passwords[role] for role in DATABASE_ROLES}


def realm_text(settings: Settings, extra: dict[str, str]) -> str:
    """The registry's realm (digests and roles of every principal in the user store) and
    ``extra`` Quarkus properties (the datasource password), one properties file."""
    text = registry_users.realm_properties(registry_users.entries(StateLayout.of(settings)))
    return text + "".join(f"{key}={value}\n" for key, value in extra.items())


def pgpass_text(host: str, passwords: dict[str, str]) -> str:
    return "".join(f"{host}:*:*:{role}:{passwords[role]}\n"
                   for role in (APP_ROLE, SINK_ROLE))


def client_files(settings: Settings, secrets: dict[str, str], bootstrap: str,
                 registry_url: str, database_host: str) -> dict[str, str]:
    """File name -> text of the services' client folder: each service principal's client
    properties file (the CA as the image mounts it), the password file, the CA."""
    where = replace(settings, kafka_bootstrap=bootstrap, registry_url=registry_url)
    tls = ensure_tls(StateLayout.of(settings).secrets)
    files = {
        f"{principal}.properties": properties_text(
            where, principal, secrets[principal], f"{CLIENTS_MOUNT}/ca.pem"
        )
        for principal in SERVICE_PRINCIPALS
    }
    files["pgpass"] = pgpass_text(database_host, database_passwords(settings))
    files["ca.pem"] = tls.ca.read_text(encoding="utf-8")
    return files


def write_files(folder: Path, files: dict[str, str]) -> list[Path]:
    """Write each file 0600 into ``folder`` (made 0700)."""
    private_folder(folder)
    written = []
    for name, text in files.items():
        path = folder / name
        if not path.parent.exists():
            private_folder(path.parent)
        write_private(path, text)
        written.append(path)
    return written


# ------------------------------------------------------------------------------ Kubernetes


def _secret(deployment: Deployment, name: str, data: dict[str, str],
            secret_type: str = "Opaque", labels: dict[str, str] | None = None,
            annotations: dict[str, str] | None = None) -> dict[str, object]:
    metadata: dict[str, object] = {"name": name, "namespace": deployment.namespace}
    if labels:
        metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": secret_type,
        # base64 rather than stringData: PEM and properties files keep their exact bytes.
        "data": {key: base64.b64encode(value.encode()).decode("ascii")
                 for key, value in data.items()},
    }


def kubernetes_secrets(settings: Settings, deployment: Deployment) -> list[dict[str, object]]:
    """Every Secret the manifests name, made from the state folder's secrets."""
    layout = StateLayout.of(settings)
    tls: TlsFiles = ensure_tls(layout.secrets, deployment.service_names())
    ca = tls.ca.read_text(encoding="utf-8")
    secrets = principal_secrets(settings, deployment.agency_ids)
    passwords = database_passwords(settings)
    strimzi = {"strimzi.io/kind": "Kafka", "strimzi.io/cluster": KAFKA_CLUSTER}
    found = [
        # Strimzi's custom cluster CA: it signs the brokers' certificates with our CA.
        _secret(deployment, f"{KAFKA_CLUSTER}-cluster-ca-cert", {"ca.crt": ca},
                labels=strimzi, annotations={"strimzi.io/ca-cert-generation": "0"}),
        _secret(deployment, f"{KAFKA_CLUSTER}-cluster-ca",
                {"ca.key": tls.ca_key.read_text(encoding="utf-8")},
                labels=strimzi, annotations={"strimzi.io/ca-key-generation": "0"}),
        _secret(deployment, CA_SECRET, {"ca.crt": ca}),
        _secret(deployment, SERVER_TLS_SECRET, {
            "tls.crt": tls.server_certificate.read_text(encoding="utf-8"),
            "tls.key": tls.server_key.read_text(encoding="utf-8"),
            "ca.crt": ca,
        }, "kubernetes.io/tls"),
        _secret(deployment, REALM_SECRET, {"realm.properties": realm_text(
            settings, {"apicurio.datasource.password": passwords[REGISTRY_ROLE]}
        )}),
        _secret(deployment, CLIENTS_SECRET, client_files(
            settings, secrets, deployment.kafka_bootstrap, deployment.registry_url,
            deployment.database_host,
        )),
    ]
    found += [_secret(deployment, password_secret(principal), {"password": secret})
              for principal, secret in sorted(secrets.items())]
    found += [_secret(deployment, f"tipsync-db-{role}",
                      {"username": role, "password": passwords[role]},
                      "kubernetes.io/basic-auth")
              for role in DATABASE_ROLES]
    return found


def write_kubernetes_secrets(settings: Settings, deployment: Deployment,
                             out: Path) -> Path:
    """``out/secrets.yaml`` (0600, ``out`` 0700): apply it once, then delete it."""
    text = "".join("---\n" + yaml.safe_dump(secret, sort_keys=False)
                   for secret in kubernetes_secrets(settings, deployment))
    path = out / "secrets.yaml"
    write_files(out, {"secrets.yaml": text})
    return path
