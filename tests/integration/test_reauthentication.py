"""Re-authentication (KIP-368) on the real broker, checked with Kafka's console producer (the
Java client, not tipsync's code): a connection opened before ``tipsync agency revoke`` or
``tipsync agency rotate`` ends within the broker's ``connections.max.reauth.ms``
(``TIPSYNC_KAFKA_REAUTH_MS``), because the broker asks it to authenticate again and the
credential it holds no longer exists or no longer matches.

The two agencies are cut off side by side, so the test waits out one window (a minute by
default), not two.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from deploy.stack import kafka_classpath
from deploy.stack.artifacts import java_executable
from schemas import config
from schemas.config import Settings
from tests.integration.kafka_tools import java_client_config
from tests.integration.test_kafka_security import Broker, broker_with_topics

REVOKED = "health-ministry"  # agencies no other integration test enrols
ROTATED = "hope-line-ngo"
# what the Java client logs when the broker refuses its re-authentication
REAUTH_REFUSED = "failed during re-authentication"
# the Java client re-authenticates at 85-95 % of the session; on a loaded machine a JVM and
# a command's own Kafka calls take their time too
SLACK_SECONDS = 30.0


@dataclass
class OpenProducer:
    """Kafka's console producer kept running: one record per ``send``; what it logs is
    collected with the time it came."""

    process: subprocess.Popen[str]
    logged: list[tuple[float, str]] = field(default_factory=list)
    sent: int = 0

    def send(self) -> None:
        assert self.process.stdin is not None
        self.sent += 1
        self.process.stdin.write(f"a-synthetic-value-{self.sent}\n")
        self.process.stdin.flush()

    def first_logged(self, text: str) -> float | None:
        return next((at for at, line in list(self.logged) if text in line), None)

    def collect(self, stream: IO[str]) -> None:
        for line in stream:
            self.logged.append((time.monotonic(), line.rstrip()))


@pytest.fixture
def reauth_broker(stack: Settings, tmp_path: Path) -> Iterator[Broker]:
    with broker_with_topics(stack, tmp_path / "java", "reauth", lambda names: [
        names.agency(REVOKED, "person"), names.agency(ROTATED, "person"),
    ]) as found:
        yield found


def open_producer(settings: Settings, java_config: Path, topic: str) -> OpenProducer:
    process = subprocess.Popen(
        [java_executable(), "-Xmx256m", "-cp", kafka_classpath(settings),
         "org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server",
         settings.kafka_bootstrap, "--topic", topic, "--producer.config", str(java_config),
         "--producer-property", "linger.ms=0", "--producer-property", "max.block.ms=5000",
         "--producer-property", "request.timeout.ms=5000",
         "--producer-property", "delivery.timeout.ms=10000"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    producer = OpenProducer(process)
    assert process.stdout is not None
    threading.Thread(target=producer.collect, args=(process.stdout,), daemon=True).start()
    return producer


def wait_for_offset(broker: Broker, topic: str, wanted: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while (found := broker.end_offset(topic)) < wanted and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def tipsync(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.cli", *arguments],
                          capture_output=True, text=True, timeout=300)


def test_open_connections_of_a_revoked_and_a_rotated_agency_end_within_the_window(
    reauth_broker: Broker, enroll_agency, stack: Settings
) -> None:
    broker = reauth_broker
    window = config.kafka_reauth_ms() / 1000
    properties = (stack.home / "kafka" / "server.properties").read_text(encoding="utf-8")
    assert f"connections.max.reauth.ms={config.kafka_reauth_ms()}" in properties
    producers: dict[str, OpenProducer] = {}
    topics = {agency: broker.names.agency(agency, "person") for agency in (REVOKED, ROTATED)}
    try:
        for agency, topic in topics.items():
            own = broker.java(enroll_agency(agency, broker.names.root))
            producers[agency] = open_producer(stack, own, topic)
            producers[agency].send()
        for agency, topic in topics.items():  # both connected and authenticated
            assert wait_for_offset(broker, topic, 1) == 1, producers[agency].logged
        acted = time.monotonic()
        revoked = tipsync("agency", "revoke", REVOKED)
        assert revoked.returncode == 0, revoked.stderr
        rotated = tipsync("agency", "rotate", ROTATED)
        assert rotated.returncode == 0, rotated.stderr
        # the old connections stay open until the broker wants them authenticated again
        deadline = acted + window + SLACK_SECONDS
        while time.monotonic() < deadline and not all(
            producer.first_logged(REAUTH_REFUSED) for producer in producers.values()
        ):
            for producer in producers.values():
                producer.send()
            time.sleep(1)
        for agency, producer in producers.items():
            cut = producer.first_logged(REAUTH_REFUSED)
            assert cut is not None, (
                f"{agency}'s open connection was not cut off within {window + SLACK_SECONDS}"
                f" s: {producer.logged[-5:]}"
            )
            assert cut - acted <= window + SLACK_SECONDS
        # cut off: what the old connection sends now reaches no topic
        reached = {agency: broker.end_offset(topic) for agency, topic in topics.items()}
        for producer in producers.values():
            producer.send()
        time.sleep(5)
        assert {agency: broker.end_offset(topic) for agency, topic in topics.items()} == reached
        # the rotated agency's new file works (its ACLs stand; the revoked one has none)
        new_file = stack.home / "secrets" / "agencies" / f"{ROTATED}.properties"
        assert broker.produce(broker.java(new_file), topics[ROTATED]).returncode == 0
        assert wait_for_offset(broker, topics[ROTATED], reached[ROTATED] + 1) == (
            reached[ROTATED] + 1)
    finally:
        for producer in producers.values():
            producer.process.kill()
            producer.process.wait()
        tipsync("agency", "revoke", ROTATED)
