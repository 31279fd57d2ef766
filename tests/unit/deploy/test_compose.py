"""deploy/compose.yaml and the files `tipsync deploy compose` writes must describe the stack
`tipsync stack up` runs, as securely (no Docker here: the YAML and the files are checked)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
import yaml

from deploy.operations.manifests_compose import (
    INTERNAL_KAFKA_PORT,
    ComposeDeployment,
    broker_properties,
    compose_files,
    compose_folder,
    local_broker_properties,
    write_compose_files,
)
from deploy.stack.layout import KAFKA_VERSION, REGISTRY_VERSION, StateLayout
from deploy.stack.postgres import PG_HBA, Postgres
from deploy.stack.principals import MONITOR, SINK, STREAM, service_secrets
from deploy.stack.registry import Registry
from schemas.client_config import parse_properties
from schemas.config import (
    DEFAULT_KAFKA_PORT,
    DEFAULT_POSTGRES_PORT,
    DEFAULT_REGISTRY_PORT,
    VARIABLES,
    load_settings,
)

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
PIPELINE = ("stream", "sink", "monitor", "console", "prometheus", "grafana")


def compose_services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


@pytest.fixture()
def settings(tmp_path: Path):
    return load_settings({"TIPSYNC_HOME": str(tmp_path / "home")})


def test_images_are_the_versions_the_local_stack_runs() -> None:
    services = compose_services()
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert services["registry"]["image"] == f"apicurio/apicurio-registry:{REGISTRY_VERSION}"
    assert services["postgres"]["image"] == "postgres:15"


def test_ports_are_the_defaults_and_only_kafka_and_the_registry_leave_loopback() -> None:
    services = compose_services()
    assert services["kafka"]["ports"] == [f"{DEFAULT_KAFKA_PORT}:{DEFAULT_KAFKA_PORT}"]
    assert services["registry"]["ports"] == [f"{DEFAULT_REGISTRY_PORT}:{DEFAULT_REGISTRY_PORT}"]
    assert services["postgres"]["ports"] == [f"127.0.0.1:{DEFAULT_POSTGRES_PORT}:5432"]
    for name in ("console", "prometheus", "grafana"):
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"]), name
    settings = load_settings({})
    assert settings.registry_url.endswith(f":{DEFAULT_REGISTRY_PORT}/apis/ccompat/v7")


def test_the_broker_runs_the_local_brokers_settings_with_the_containers_listeners(
    settings,
) -> None:
    local = local_broker_properties(settings)
    composed = broker_properties(settings, ComposeDeployment("kafka.example.org", 19092))
    container_keys = {"listeners", "advertised.listeners", "listener.security.protocol.map",
                      "controller.quorum.voters", "log.dirs", "ssl.keystore.location",
                      "ssl.truststore.location"}
    for key, value in local.items():
        if key not in container_keys:
            assert composed[key] == value, key
    assert {"authorizer.class.name", "allow.everyone.if.no.acl.found", "super.users",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms"} <= set(local)
    # every listener a client reaches is SASL_SSL; the controller's is on the network only
    protocols = dict(pair.split(":") for pair in
                     composed["listener.security.protocol.map"].split(","))
    listeners = [entry.split("://")[0] for entry in composed["listeners"].split(",")]
    assert {protocols[name] for name in listeners} == {"SASL_SSL", "SASL_PLAINTEXT"}
    assert protocols["CONTROLLER"] == "SASL_PLAINTEXT"
    assert composed["listener.name.external.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert composed["advertised.listeners"] == (
        f"SASL_SSL://kafka:{INTERNAL_KAFKA_PORT},EXTERNAL://kafka.example.org:19092"
    )
    assert "PLAINTEXT://" not in composed["listeners"]


def test_the_broker_reads_its_configuration_and_formats_from_files_not_arguments() -> None:
    kafka = compose_services()["kafka"]
    command = " ".join(kafka["command"])
    assert "@/etc/tipsync/kafka/format.args" in command
    assert "kafka-server-start.sh /etc/tipsync/kafka/server.properties" in command
    assert "environment" not in kafka  # the whole configuration is the generated file


def test_the_registry_is_secured_as_the_local_registry(settings) -> None:
    layout = StateLayout.of(settings)
    postgres = Postgres(settings, layout)
    postgres._ensure_passwords()
    local = Registry(settings, layout, postgres)._environment()
    composed = compose_services()["registry"]["environment"]
    guarded = ("APICURIO_AUTH", "QUARKUS_HTTP_AUTH", "QUARKUS_HTTP_INSECURE", "APICURIO_STORAGE")
    security = [key for key in local if key.startswith(guarded)]
    assert len(security) >= 6
    for key in security:
        assert composed[key] == local[key], key
    assert composed["QUARKUS_HTTP_SSL_PORT"] == str(DEFAULT_REGISTRY_PORT)
    assert "APICURIO_DATASOURCE_PASSWORD" not in composed
    assert "sslmode=verify-full" in composed["APICURIO_DATASOURCE_URL"]


def test_postgres_has_tls_the_local_rules_and_scram() -> None:
    postgres = compose_services()["postgres"]
    settings = dict(postgres["command"][index + 1].split("=", 1)
                    for index, word in enumerate(postgres["command"]) if word == "-c")
    assert settings["ssl"] == "on"
    assert settings["password_encryption"] == "scram-sha-256"
    assert settings["hba_file"].startswith("/etc/tipsync/postgres/")
    assert postgres["environment"]["POSTGRES_INITDB_ARGS"] == "--auth=scram-sha-256"
    assert "POSTGRES_PASSWORD" not in postgres["environment"]


def test_the_pipeline_profile_runs_each_process_as_its_own_principal() -> None:
    services = compose_services()
    for name in PIPELINE:
        assert services[name]["profiles"] == ["pipeline"], name
    principals = {"stream": STREAM, "sink": SINK, "monitor": MONITOR, "console": MONITOR}
    for name, principal in principals.items():
        service = services[name]
        assert service["command"][0] == name
        assert service["environment"]["TIPSYNC_CLIENT_CONFIG"] == (
            f"/etc/tipsync/clients/{principal}.properties"
        )
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert "sslmode=verify-full" in service["environment"]["TIPSYNC_DATABASE_URL"]


def test_no_secret_is_written_in_the_compose_files() -> None:
    """Not even in a comment: users copy the header's commands (issue 14). A setting that
    names a password or secret names the file holding it (``_FILE``), never the value."""
    credentials = re.compile(r"://[^/@\s\"']*:[^/@\s\"']*@")
    declared = {variable.name for variable in VARIABLES}
    for path in (COMPOSE, DEPLOY / "compose-init.sql", DEPLOY / "compose-prometheus.yaml"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            where = f"{path.name}:{number}: {line.strip()}"
            assert not credentials.search(line), where
            assert not re.search(r"password\s*=\s*[\"']", line, re.IGNORECASE), where
            assert not re.search(r"PASSWORD '", line), where
            assert set(re.findall(r"TIPSYNC_[A-Z_]+", line)) <= declared, where
    checked = 0
    for name, service in compose_services().items():
        environment = service.get("environment", {})
        for key in environment:
            if re.search("PASSWORD|SECRET", key):
                assert key.endswith("_FILE"), f"{name}: {key}"
                checked += 1
        for word in service.get("command", []):
            assert not re.match(r"-*(sasl\.)?password[=:]", word, re.IGNORECASE), f"{name}: {word}"
    assert checked == 2  # PostgreSQL's and Grafana's first passwords, each a file


def test_the_generated_files_are_private_and_hold_the_stacks_own_secrets(settings) -> None:
    where = ComposeDeployment()
    files = compose_files(settings, where)
    secrets = service_secrets(StateLayout.of(settings))
    stream = parse_properties(files["clients"]["stream.properties"])
    assert stream["sasl.password"] == secrets[STREAM]
    assert stream["bootstrap.servers"] == f"kafka:{INTERNAL_KAFKA_PORT}"
    assert stream["ssl.ca.location"] == "/etc/tipsync/clients/ca.pem"
    assert files["postgres"]["pg_hba.conf"] == PG_HBA
    roles = files["postgres"]["10-roles.sql"]
    passwords = Postgres(settings, StateLayout.of(settings)).passwords()
    assert "SCRAM-SHA-256$" in roles
    assert not any(password in roles for password in passwords.values())
    assert secrets["admin"] in files["kafka"]["format.args"]
    write_compose_files(settings, where)
    base = compose_folder(settings)
    for path in base.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"
    if os.geteuid() == 0:
        assert (base / "postgres" / "tls" / "server-key.pem").stat().st_uid == 999
    # the administrator's own files, as `stack up` writes them, name the published ports
    admin = parse_properties((settings.home / "secrets" / "clients" / "admin.properties")
                             .read_text())
    assert admin["bootstrap.servers"] == f"127.0.0.1:{DEFAULT_KAFKA_PORT}"
