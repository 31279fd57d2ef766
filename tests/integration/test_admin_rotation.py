"""Rotating the admin's secret, on the real broker, checked with Kafka's own TopicCommand (not
tipsync's code): the old admin file is refused and the new one works; and a rotation that
wrote ``principals.json`` but never reached the broker (the process stopped in between, or
the broker's answer timed out) no longer leaves a Kafka that refuses the admin for good: the
next ``tipsync stack up`` sets the admin's credential, logged in with the replaced secret
the broker still holds (``deploy.stack.admin_credential``).

Both restart the stack's Kafka (and its registry, for the admin's new digest): tens of
seconds each on a loaded machine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from deploy.stack.acls import KafkaAccess
from deploy.stack.admin_credential import admin_refused
from deploy.stack.clients import write_client_file
from deploy.stack.health import kafka_health
from deploy.stack.layout import StateLayout
from deploy.stack.principals import (
    ADMIN,
    MONITOR,
    previous_admin_secrets,
    renew_service_secret,
)
from deploy.stack.stack import LocalStack
from deploy.stack.tls import ensure_tls
from schemas import config
from schemas.client_config import load_client_config
from schemas.config import Settings
from tests.integration.kafka_tools import java_client_config, kafka_tool
from tests.integration.test_kafka_security import AUTHENTICATION_FAILED, TOPIC_COMMAND

REVOKED = "labour-ministry"  # an agency no other integration test enrols


def tipsync(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.cli", *arguments],
                          capture_output=True, text=True, timeout=600)


def list_topics(stack: Settings, java: Path) -> subprocess.CompletedProcess[str]:
    return kafka_tool(stack, TOPIC_COMMAND, "--bootstrap-server", stack.kafka_bootstrap,
                      "--command-config", str(java), "--list")


def kept_copy(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    kept = folder / f"{path.stem}-before.properties"
    kept.touch(mode=0o600)
    kept.write_text(path.read_text("utf-8"), "utf-8")
    return kept


def client_of(path: Path, stack: Settings):  # type: ignore[no-untyped-def]
    return load_client_config(path, default_bootstrap=stack.kafka_bootstrap,
                              default_registry_url=stack.registry_url, named_by="the test")


def test_stack_rotate_admin_refuses_the_old_admin_file_and_the_new_one_works(
    stack: Settings, tmp_path: Path
) -> None:
    local = config.local_client_file(stack.home, ADMIN)
    old = java_client_config(kept_copy(local, tmp_path / "kept"), tmp_path / "java")
    rotated = tipsync("stack", "rotate", ADMIN, "--yes")
    assert rotated.returncode == 0, rotated.stderr
    refused = list_topics(stack, old)
    assert refused.returncode != 0
    assert AUTHENTICATION_FAILED in refused.stderr + refused.stdout
    listed = list_topics(stack, java_client_config(local, tmp_path / "java"))
    assert listed.returncode == 0, listed.stderr
    # a service's file, untouched, still works
    monitor = config.local_client_file(stack.home, MONITOR)
    assert list_topics(stack, java_client_config(monitor, tmp_path / "java")).returncode == 0


def test_a_rotation_that_never_reached_the_broker_is_repaired_by_the_next_stack_up(
    stack: Settings, tmp_path: Path
) -> None:
    layout = StateLayout.of(stack)
    local = config.local_client_file(stack.home, ADMIN)
    # what `stack rotate admin` does first; then it stops before the broker hears of it
    secret = renew_service_secret(layout, ADMIN)
    # the state `stack up` used to leave for good: the admin's file holds principals.json's
    # secret, the broker another; `stack status` says so, and how to fix it
    write_client_file(local, stack, ADMIN, secret, ensure_tls(layout.secrets))
    health = kafka_health(LocalStack(stack).kafka)
    assert health.state == "degraded"
    assert health.problem is not None and "tipsync stack up" in health.problem
    LocalStack(stack).kafka.stop()
    # Kafka starts with the new secret in its configuration, the old one in its metadata
    up = tipsync("stack", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "logged in with a replaced one" in up.stderr
    # `up` wrote the admin's file from principals.json; the broker now takes it, and the
    # replaced secrets are forgotten
    assert not previous_admin_secrets(layout)
    assert not admin_refused(client_of(local, stack))
    listed = list_topics(stack, java_client_config(local, tmp_path / "java"))
    assert listed.returncode == 0, listed.stderr
    # and `up` could set the services' credentials and ACLs as that admin again
    assert KafkaAccess(client_of(local, stack)).grants(MONITOR)
    monitor = config.local_client_file(stack.home, MONITOR)
    assert list_topics(stack, java_client_config(monitor, tmp_path / "java")).returncode == 0


def test_kafka_restarted_after_an_agency_is_revoked_still_takes_every_principal(
    stack: Settings, enroll_agency, tmp_path: Path
) -> None:
    """Kafka 4.1.2, once its metadata log held the deletion of an enrolled agency's SCRAM
    credential, refused every SCRAM login after a restart (the session-5 "rotate admin broke
    a long-used stack": the integration tests revoke agencies, and that rotation was the
    first restart after them). Revoking now replaces the credential instead."""
    enroll_agency(REVOKED, "tip")
    revoked = tipsync("agency", "revoke", REVOKED)
    assert revoked.returncode == 0, revoked.stderr
    kafka = LocalStack(stack).kafka
    kafka.stop()
    kafka.start()
    kafka.wait()
    for principal in (ADMIN, MONITOR):
        java = java_client_config(config.local_client_file(stack.home, principal),
                                  tmp_path / "java")
        listed = list_topics(stack, java)
        assert listed.returncode == 0, listed.stderr
