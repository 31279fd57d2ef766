"""deploy/compose.yaml must describe the same stack as `tipsync stack up` (no Docker here)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from deploy.stack.kafka import Kafka
from deploy.stack.layout import KAFKA_VERSION, REGISTRY_VERSION, StateLayout
from schemas.config import (
    DEFAULT_KAFKA_PORT,
    DEFAULT_POSTGRES_PORT,
    DEFAULT_REGISTRY_PORT,
    load_settings,
)

COMPOSE = Path(__file__).resolve().parents[3] / "deploy" / "compose.yaml"


def compose_services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def local_kafka_properties(tmp_path: Path) -> dict[str, str]:
    settings = load_settings({"TIPSYNC_HOME": str(tmp_path)})
    text = Kafka(settings, StateLayout.of(settings))._properties()
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return dict(pairs)


def test_images_are_the_versions_the_local_stack_runs() -> None:
    services = compose_services()
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert services["registry"]["image"] == f"apicurio/apicurio-registry:{REGISTRY_VERSION}"
    assert services["postgres"]["image"] == "postgres:15"


def test_ports_are_published_on_loopback_at_the_default_addresses() -> None:
    services = compose_services()
    assert services["kafka"]["ports"] == [f"127.0.0.1:{DEFAULT_KAFKA_PORT}:{DEFAULT_KAFKA_PORT}"]
    assert services["registry"]["ports"] == [
        f"127.0.0.1:{DEFAULT_REGISTRY_PORT}:{DEFAULT_REGISTRY_PORT}"
    ]
    assert services["postgres"]["ports"] == [f"127.0.0.1:{DEFAULT_POSTGRES_PORT}:5432"]
    registry_env = services["registry"]["environment"]
    assert registry_env["QUARKUS_HTTP_PORT"] == str(DEFAULT_REGISTRY_PORT)
    settings = load_settings({})
    assert settings.registry_url.endswith(f":{DEFAULT_REGISTRY_PORT}/apis/ccompat/v7")


def test_broker_settings_agree_with_the_local_broker(tmp_path: Path) -> None:
    local = local_kafka_properties(tmp_path)
    compose_env = compose_services()["kafka"]["environment"]
    # host paths and the admin's secret: the compose file names the container's paths and
    # takes the secret from a variable (test_no_password_is_written_in_the_compose_file)
    skipped = {"log.dirs", "listeners", "controller.quorum.voters", "node.id",
               "ssl.keystore.location", "ssl.truststore.location",
               "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config",
               "listener.name.controller.plain.sasl.jaas.config"}
    compared = 0
    for key, value in local.items():
        if key in skipped:
            continue
        env_key = "KAFKA_" + key.upper().replace(".", "_")
        assert compose_env.get(env_key) == value, f"{env_key} differs from local {key}={value}"
        compared += 1
    assert compared >= 15


def test_registry_keeps_its_schemas_in_postgresql() -> None:
    registry_env = compose_services()["registry"]["environment"]
    assert registry_env["APICURIO_STORAGE_KIND"] == "sql"
    assert registry_env["APICURIO_STORAGE_SQL_KIND"] == "postgresql"
    assert registry_env["APICURIO_DATASOURCE_URL"].endswith("/apicurio")


def test_no_password_is_written_in_the_compose_file() -> None:
    text = COMPOSE.read_text()
    for line in text.splitlines():
        if "PASSWORD:" in line:
            assert "${TIPSYNC_POSTGRES_PASSWORD:?" in line, line
        if "password=" in line:
            assert 'password="${TIPSYNC_KAFKA_ADMIN_SECRET:?' in line, line


def test_no_url_in_the_compose_files_carries_a_password() -> None:
    """Not even in a comment: users copy the header's commands (issue 14)."""
    credentials = re.compile(r"://[^/@\s\"']*:[^/@\s\"']*@")
    for path in (COMPOSE, COMPOSE.with_name("compose-init.sql")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            assert not credentials.search(line), f"{path.name}:{number}: {line.strip()}"
