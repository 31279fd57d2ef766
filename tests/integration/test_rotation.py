"""Rotating secrets, and the stream reading only registered agencies, checked on the real
broker and registry with clients that are not tipsync's: Kafka's console tools (the Java
clients' keys made from the files ``tipsync`` issues) and curl.

Rotation restarts the local registry (its realm is read when it starts), so these tests take
tens of seconds each on a loaded machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from deploy.stack.acls import (
    KafkaAccess,
    legacy_stream_grants,
    service_grants,
    stream_agency_grants,
)
from schemas import config
from schemas.agencies import default_agencies_path, load_agencies
from schemas.client_config import load_client_config
from schemas.config import Settings
from schemas.topics import TOPICS
from tests.integration.kafka_tools import java_client_config, kafka_tool
from tests.integration.test_kafka_security import (
    AUTHENTICATION_FAILED,
    TOPIC_COMMAND,
    Broker,
    broker_with_topics,
)

ROTATED = "customs"  # an agency no other integration test enrols
UNREGISTERED = "rogue-agency"  # a well-formed id the agency registry does not list
REGISTERED = "police-ctu"


def tipsync(
    *arguments: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.cli", *arguments],
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture
def rotation_broker(stack: Settings, tmp_path: Path) -> Iterator[Broker]:
    with broker_with_topics(stack, tmp_path / "java", "rot", lambda names: [
        names.agency(ROTATED, "person"), names.agency(REGISTERED, "person"),
        names.agency(UNREGISTERED, "person"),
    ]) as found:
        yield found


def registry_status(client_file: Path, folder: Path) -> str:
    """The HTTP status curl gets for the registry's subject list with the file's registry
    credentials (read from a curl config file, never from the command line)."""
    client = load_client_config(client_file, default_bootstrap="", default_registry_url="",
                                named_by="the test")
    curl_config = folder / f"curl-{uuid.uuid4().hex[:6]}.conf"
    curl_config.touch(mode=0o600)
    curl_config.write_text(f'user = "{client.registry_user_info}"\n', encoding="utf-8")
    result = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
         str(client_file.parent / "tipsync-ca.pem"), "-K", str(curl_config),
         f"{client.registry_url}/subjects"],
        capture_output=True, text=True, timeout=60,
    )
    return result.stdout


def test_a_rotated_agencys_old_file_is_refused_and_its_new_file_publishes(
    rotation_broker: Broker, enroll_agency: Callable[[str, str], Path], tmp_path: Path
) -> None:
    broker = rotation_broker
    topic = broker.names.agency(ROTATED, "person")
    issued = enroll_agency(ROTATED, broker.names.root)
    old = broker.java(issued)
    old_registry = tmp_path / "old"
    old_registry.mkdir()
    (old_registry / "customs.properties").write_text(issued.read_text("utf-8"), "utf-8")
    (old_registry / "customs.properties").chmod(0o600)
    ca = "tipsync-ca.pem"
    (old_registry / ca).write_bytes((issued.parent / ca).read_bytes())
    broker.produce(old, topic)
    assert broker.end_offset(topic) == 1
    try:
        fresh = tmp_path / "rotated" / "customs.properties"
        rotated = tipsync("agency", "rotate", ROTATED, "--out", str(fresh))
        assert rotated.returncode == 0, rotated.stderr
        assert fresh.stat().st_mode & 0o777 == 0o600
        assert (fresh.parent / "tipsync-ca.pem").is_file()

        refused = broker.produce(old, topic)
        assert AUTHENTICATION_FAILED in refused.stderr + refused.stdout
        assert broker.end_offset(topic) == 1
        assert registry_status(old_registry / "customs.properties", tmp_path) == "401"

        broker.produce(broker.java(fresh), topic)
        assert broker.end_offset(topic) == 2
        assert registry_status(fresh, tmp_path) == "200"
        # the local file follows: enrolling again keeps the rotated secret
        assert enroll_agency(ROTATED, broker.names.root).read_text("utf-8") == \
            fresh.read_text("utf-8")
    finally:
        assert tipsync("agency", "revoke", ROTATED).returncode == 0


def test_rotating_an_agency_that_is_not_enrolled_is_refused_with_the_fix() -> None:
    assert tipsync("agency", "revoke", ROTATED).returncode == 0
    refused = tipsync("agency", "rotate", ROTATED)
    assert refused.returncode == 2
    assert f"tipsync agency enroll {ROTATED}" in refused.stderr


def test_a_rotated_service_secret_refuses_the_old_file(stack: Settings, tmp_path: Path) -> None:
    local = config.local_client_file(stack.home, "monitor")
    kept = tmp_path / "monitor-before.properties"
    kept.write_text(local.read_text("utf-8"), "utf-8")
    kept.chmod(0o600)
    folder = tmp_path / "java"
    old = java_client_config(kept, folder)
    rotated = tipsync("stack", "rotate", "monitor")
    assert rotated.returncode == 0, rotated.stderr
    assert local.read_text("utf-8") != kept.read_text("utf-8")

    def list_topics(java: Path) -> subprocess.CompletedProcess[str]:
        return kafka_tool(stack, TOPIC_COMMAND, "--bootstrap-server", stack.kafka_bootstrap,
                          "--command-config", str(java), "--list")

    refused = list_topics(old)
    assert refused.returncode != 0
    assert AUTHENTICATION_FAILED in refused.stderr + refused.stdout
    listed = list_topics(java_client_config(local, folder))
    assert listed.returncode == 0, listed.stderr


def test_only_service_principals_rotate_with_stack_rotate() -> None:
    refused = tipsync("stack", "rotate", "agency-customs")
    assert refused.returncode == 2
    assert "tipsync agency rotate" in refused.stderr


# --------------------------------------------------------------------------- the stream's read


def test_stack_up_lets_the_stream_read_each_registered_agency_and_not_the_agency_prefix(
    stack: Settings,
) -> None:
    held = set(KafkaAccess(stack.client).grants("stream"))
    assert not held & set(legacy_stream_grants(TOPICS))
    for agency_id in load_agencies():
        assert set(stream_agency_grants(agency_id, TOPICS)) <= held


def test_the_stream_principal_reads_a_registered_agencys_topic_and_no_other(
    rotation_broker: Broker,
) -> None:
    """As ``stack up`` grants it for ``tip``: the stream's own file, Kafka's console
    consumer (``Broker.consume``), a group under the stream's internal prefix."""
    broker = rotation_broker
    names = broker.names
    KafkaAccess(broker.settings.client).grant(service_grants(names, load_agencies()))
    assert broker.settings.client.source is not None
    admin_java = broker.java(broker.settings.client.source)
    registered, unregistered = names.agency(REGISTERED, "person"), \
        names.agency(UNREGISTERED, "person")
    for topic in (registered, unregistered):
        broker.produce(admin_java, topic)
        assert broker.end_offset(topic) == 1
    stream = broker.java(config.local_client_file(broker.settings.home, "stream"))
    group = names.internal_prefix + "console-check"

    read = broker.consume(stream, registered, group)
    assert "a-synthetic-value" in read.stdout, read.stderr
    refused = broker.consume(stream, unregistered, group)
    assert "TopicAuthorizationException" in refused.stderr + refused.stdout
    assert "Processed a total of 0 messages" in refused.stderr + refused.stdout


def test_revoking_an_agency_the_registry_no_longer_lists_withdraws_the_streams_read(
    rotation_broker: Broker, enroll_agency: Callable[[str, str], Path], tmp_path: Path
) -> None:
    names = rotation_broker.names
    access = KafkaAccess(rotation_broker.settings.client)
    enroll_agency(ROTATED, names.root)
    assert set(stream_agency_grants(ROTATED, names)) <= set(access.grants("stream"))
    # still registered: ingest must drain its topics, so the stream keeps reading them
    kept = tipsync("agency", "revoke", ROTATED)
    assert kept.returncode == 0, kept.stderr
    assert "the stream still reads" in kept.stdout
    assert set(stream_agency_grants(ROTATED, names)) <= set(access.grants("stream"))
    # removed from the registry: revoking withdraws the stream's read under every root
    without = tmp_path / "agencies.yaml"
    without.write_text(_registry_without(default_agencies_path(), ROTATED), encoding="utf-8")
    try:
        withdrawn = tipsync("agency", "revoke", ROTATED,
                            env={**os.environ, config.AGENCIES: str(without)})
        assert withdrawn.returncode == 0, withdrawn.stderr
        held = set(access.grants("stream"))
        assert not held & {*stream_agency_grants(ROTATED, names),
                           *stream_agency_grants(ROTATED, TOPICS)}
    finally:  # what `stack up` grants for the default root, back
        access.grant(stream_agency_grants(ROTATED, TOPICS))


def _registry_without(path: Path, agency_id: str) -> str:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document["agencies"] = [entry for entry in document["agencies"]
                            if entry["id"] != agency_id]
    return yaml.safe_dump(document)
