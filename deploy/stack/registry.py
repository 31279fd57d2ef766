"""The local stack's Apicurio Registry, keeping its schemas in PostgreSQL, served over HTTPS
only, to authenticated users only.

Apicurio's own authentication and authorization do it, with no identity server:

- TLS: Quarkus serves the stack's server certificate (``deploy.stack.tls``) on the registry
  port; ``quarkus.http.insecure-requests=disabled`` leaves the plain HTTP port closed.
- Who: HTTP basic authentication (``quarkus.http.auth.basic``, which Apicurio's
  authentication chain reads as its "basic" mechanism) against Quarkus' embedded properties
  realm. Its users, digests and roles come from the registry user store
  (``deploy.stack.registry_users``), written into a realm file (0600) at every start and
  handed to Quarkus by ``quarkus.config.locations``; a request without valid credentials gets
  401.
- What: Apicurio's role-based authorization with roles from the identity
  (``apicurio.auth.role-based-authorization``, ``role-source=token``): ``sr-readonly`` may
  read, ``sr-admin`` may also register, delete, and change rules and configuration (403 for
  a reader).

The realm is read once, when the registry starts: ``Registry.reload`` restarts the local
registry so that a grant or revoke in the store takes effect.
"""

from __future__ import annotations

import os
import ssl
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from deploy.stack import artifacts, principals, registry_users
from deploy.stack.layout import StackError, StateLayout, private_folder
from deploy.stack.postgres import REGISTRY_ROLE, Postgres
from deploy.stack.processes import (
    require_free_port,
    start_background,
    wait_until,
)
from deploy.stack.services import Service, accepts_tcp, is_local
from deploy.stack.tls import ensure_tls, tls_files
from schemas import config
from schemas.client_config import RegistryConnection
from schemas.config import Settings

REALM_FILE = "registry-realm.properties"


def realm_path(layout: StateLayout) -> Path:
    return layout.secrets / REALM_FILE


def write_realm(layout: StateLayout) -> Path:
    """The registry's realm file, made afresh from the user store (mode 0600)."""
    private_folder(layout.secrets)
    path = realm_path(layout)
    temporary = path.with_suffix(".tmp")
    temporary.touch(mode=0o600, exist_ok=True)
    temporary.chmod(0o600)
    temporary.write_text(
        registry_users.realm_properties(registry_users.entries(layout)), encoding="utf-8"
    )
    temporary.replace(path)
    return path


def security_environment(port: int, certificate: str, key: str,
                         realm: str) -> dict[str, str]:
    """The registry's security settings, wherever it runs (the local stack, Kubernetes):
    HTTPS only on ``port`` and its management port (+ 1) with ``certificate`` and ``key``,
    basic authentication against the ``realm`` properties file, Apicurio's roles from the
    identity, no anonymous or merely authenticated access."""
    return {
        # HTTPS on the registry port; the plain HTTP port is never opened.
        "QUARKUS_HTTP_SSL_PORT": str(port),
        "QUARKUS_HTTP_INSECURE_REQUESTS": "disabled",
        "QUARKUS_HTTP_SSL_CERTIFICATE_FILES": certificate,
        "QUARKUS_HTTP_SSL_CERTIFICATE_KEY_FILES": key,
        "QUARKUS_MANAGEMENT_PORT": str(port + 1),
        "QUARKUS_MANAGEMENT_SSL_CERTIFICATE_FILES": certificate,
        "QUARKUS_MANAGEMENT_SSL_CERTIFICATE_KEY_FILES": key,
        # Basic authentication against the realm file, Apicurio's roles from the identity.
        # Quarkus logs that quarkus.http.auth.basic is "build time fixed to 'null'":
        # Apicurio's authentication chain reads the value given here and delegates to
        # Quarkus' basic mechanism (checked: 401 without credentials).
        "QUARKUS_HTTP_AUTH_BASIC": "true",
        "QUARKUS_CONFIG_LOCATIONS": realm,
        "APICURIO_AUTH_ROLE_BASED_AUTHORIZATION": "true",
        "APICURIO_AUTH_ROLE_SOURCE": "token",
        "APICURIO_AUTH_ANONYMOUS_READ_ACCESS_ENABLED": "false",
        "APICURIO_AUTH_AUTHENTICATED_READ_ACCESS_ENABLED": "false",
    }

# --------------------------------------------------------------------------- Apicurio


class Registry(Service):
    name = "registry"
    variable = config.REGISTRY_URL

    def __init__(self, settings: Settings, layout: StateLayout, postgres: Postgres) -> None:
        super().__init__(settings, layout)
        self.postgres = postgres

    @property
    def local(self) -> bool:
        return is_local(urlsplit(self.settings.registry_url).hostname)

    @property
    def port(self) -> int:
        return self.settings.registry_port

    @property
    def management_port(self) -> int:
        return self.port + 1

    @property
    def address(self) -> str:
        return self.settings.registry_url

    def connection(self) -> RegistryConnection:
        """How the stack itself talks to the registry: the local one as the admin principal
        (its secret from ``principals``), trusting the stack's CA; a registry elsewhere with
        the client properties file's credentials and CA."""
        if not self.local:
            return self.settings.client.registry()
        secret = principals.service_secrets(self.layout)[principals.ADMIN]
        return RegistryConnection(
            self.settings.registry_url,
            httpx.BasicAuth(principals.ADMIN, secret),
            ssl.create_default_context(cafile=tls_files(self.layout.secrets).ca),
        )

    def is_up(self) -> bool:
        """The registry answers an authenticated read over verified TLS."""
        if self.local and not accepts_tcp("127.0.0.1", self.port):
            return False
        connection = self.connection()
        try:
            response = httpx.get(
                f"{connection.url}/subjects", auth=connection.auth, verify=connection.verify,
                timeout=5,
            )
        except httpx.HTTPError:  # no TLS, a certificate we do not trust, no answer
            return False
        return response.status_code == 200

    def reload_if_stale(self) -> float | None:
        """Restart the local registry when the realm it started with is not what the user
        store holds now (a grant or revocation since its start); the seconds it took, or None
        when nothing needed doing (or the registry is not ours, or not running)."""
        path = realm_path(self.layout)
        wanted = registry_users.realm_properties(registry_users.entries(self.layout))
        loaded = path.read_text(encoding="utf-8") if path.is_file() else None
        if loaded == wanted:
            return None
        return self.reload()

    def reload(self) -> float | None:
        """Give the user store's grants and revocations effect: restart the local registry
        (it reads its realm only when it starts). Returns the seconds the restart took, or
        None when there was no local registry of ours running (the next start reads the
        store anyway). Requests during the restart (tens of seconds on 2 cores under load,
        docs/SECURITY.md) get no answer."""
        if not self.local or self.pid() is None:
            return None
        began = time.monotonic()
        self.stop()
        self.start()
        self.wait()
        return time.monotonic() - began

    def _environment(self) -> dict[str, str]:
        password = self.postgres.passwords()[REGISTRY_ROLE]
        tls = ensure_tls(self.layout.secrets)
        principals.service_secrets(self.layout)  # the admin and services are in the store
        env = dict(os.environ)
        env.update(
            {
                "QUARKUS_HTTP_HOST": "127.0.0.1",
                **security_environment(
                    self.port, str(tls.server_certificate), str(tls.server_key),
                    str(write_realm(self.layout)),
                ),
                "QUARKUS_MANAGEMENT_HOST": "127.0.0.1",
                "QUARKUS_OTEL_SDK_DISABLED": "true",
                "APICURIO_STORAGE_KIND": "sql",
                "APICURIO_STORAGE_SQL_KIND": "postgresql",
                "APICURIO_DATASOURCE_URL": self.postgres.jdbc_url("apicurio"),
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
        if urlsplit(self.settings.registry_url).scheme != "https":
            raise StackError(
                f"{self.variable}={self.settings.registry_url} names the local registry over"
                " plain HTTP, but it serves HTTPS only; set it to"
                f" https://127.0.0.1:{self.port}/apis/ccompat/v7"
            )
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
