"""Re-authentication (KIP-368) on the real broker, checked with Kafka's console producer (the
Java client, not tipsync's code): a connection opened before ``tipsync agency revoke`` or
``tipsync agency rotate`` ends within the broker's ``connections.max.reauth.ms``
(``TIPSYNC_KAFKA_REAUTH_MS``), because the broker asks it to authenticate again and the
credential it holds no longer exists or no longer matches.

The default window is ten minutes; the test restarts the stack's Kafka with a window of
``WINDOW_MS`` and, afterwards, with the window the environment says. The two agencies are cut
off side by side, so the test waits out one window, not two.
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
from deploy.stack.stack import LocalStack
from schemas import config
from schemas.config import Settings
from tests.integration.test_kafka_security import Broker, broker_with_topics

REVOKED = "health-ministry"  # agencies no other integration test enrols
ROTATED = "hope-line-ngo"
# what the Java client logs when the broker refuses its re-authentication
REAUTH_REFUSED = "failed during re-authentication"
# the Java client re-authenticates at 85-95 % of the session; on a loaded machine a JVM and
# a command's own Kafka calls take their time too
SLACK_SECONDS = 30.0
WINDOW_MS = 20_000


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


def restart_kafka(settings: Settings) -> None:
    kafka = LocalStack(settings).kafka
    kafka.stop()
    kafka.start()
    kafka.wait()


@pytest.fixture
def short_window(stack: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    """The stack's Kafka restarted with a window of ``WINDOW_MS``; as it was afterwards."""
    monkeypatch.setenv(config.KAFKA_REAUTH_MS, str(WINDOW_MS))
    restart_kafka(stack)
    try:
        yield WINDOW_MS / 1000
    finally:
        monkeypatch.undo()
        restart_kafka(stack)


@pytest.fixture
def reauth_broker(stack: Settings, short_window: float, tmp_path: Path) -> Iterator[Broker]:
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
    reauth_broker: Broker, short_window: float, enroll_agency, stack: Settings
) -> None:
    broker, window = reauth_broker, short_window
    properties = (stack.home / "kafka" / "server.properties").read_text(encoding="utf-8")
    assert f"connections.max.reauth.ms={WINDOW_MS}" in properties
    producers: dict[str, OpenProducer] = {}
    topics = {agency: broker.names.agency(agency, "person") for agency in (REVOKED, ROTATED)}
    try:
        for agency, topic in topics.items():
            own = broker.java(enroll_agency(agency, broker.names.root))
            producers[agency] = open_producer(stack, own, topic)
            producers[agency].send()
        for agency, topic in topics.items():  # both connected and authenticated
            assert wait_for_offset(broker, topic, 1) == 1, producers[agency].logged
        # revoke one, rotate the other (each restarts the registry: tens of seconds), while
        # both producers keep sending: the Java client re-authenticates on a used connection
        acted: dict[str, float] = {}
        results: dict[str, subprocess.CompletedProcess[str]] = {}

        def act() -> None:
            for agency, action in ((REVOKED, "revoke"), (ROTATED, "rotate")):
                acted[agency] = time.monotonic()
                results[agency] = tipsync("agency", action, agency)

        acting = threading.Thread(target=act, daemon=True)
        acting.start()
        while acting.is_alive() or (
            time.monotonic() < max(acted.values()) + window + SLACK_SECONDS
            and not all(producer.first_logged(REAUTH_REFUSED) for producer in producers.values())
        ):
            for producer in producers.values():
                producer.send()
            time.sleep(1)
        for result in results.values():
            assert result.returncode == 0, result.stderr
        for agency, producer in producers.items():
            cut = producer.first_logged(REAUTH_REFUSED)
            assert cut is not None, (
                f"{agency}'s open connection was not cut off within {window + SLACK_SECONDS}"
                f" s: {producer.logged[-5:]}"
            )
            # the old connection ends within a window of the credential's change
            assert acted[agency] < cut <= acted[agency] + window + SLACK_SECONDS
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
