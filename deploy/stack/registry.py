"""The local stack's Apicurio Registry, keeping its schemas in PostgreSQL."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import httpx

from deploy.stack import artifacts
from deploy.stack.layout import StateLayout
from deploy.stack.postgres import REGISTRY_ROLE, Postgres
from deploy.stack.processes import (
    require_free_port,
    start_background,
    wait_until,
)
from deploy.stack.services import Service, accepts_tcp, is_local
from schemas import config
from schemas.config import Settings

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

    def is_up(self) -> bool:
        if self.local and not accepts_tcp("127.0.0.1", self.port):
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
