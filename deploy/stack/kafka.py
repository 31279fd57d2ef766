"""The local stack's Kafka: one KRaft node (broker and controller) on loopback."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

from deploy.stack import artifacts
from deploy.stack.layout import PRIVATE_UMASK, StackError
from deploy.stack.processes import (
    require_free_port,
    start_background,
    wait_until,
)
from deploy.stack.services import Service, accepts_tcp, is_local
from schemas import config

# --------------------------------------------------------------------------- Kafka


KAFKA_LOG4J = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


# Kafka's reserved ids (org.apache.kafka.common.Uuid.RESERVED): ZERO_UUID and ONE_UUID (which
# is also METADATA_TOPIC_ID).
RESERVED_KAFKA_IDS = frozenset({bytes(16), bytes(15) + b"\x01"})


def new_cluster_id(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """A KRaft cluster id made the way Kafka's ``Uuid.randomUuid()`` makes one.

    Kafka draws a random (version 4) UUID and draws again while the id is reserved or its
    URL-safe base64 form (22 characters, no padding) starts with '-': StorageTool would read
    such an id as an option (``argument --cluster-id/-t: expected one argument``). About one
    draw in 64 starts with '-'. Doing it here spares a second JVM start (``random-uuid``).
    """
    while True:
        candidate = uuid.UUID(bytes=random_bytes(16), version=4).bytes
        text = base64.urlsafe_b64encode(candidate).decode("ascii").rstrip("=")
        if candidate not in RESERVED_KAFKA_IDS and not text.startswith("-"):
            return text


def _silent_logger() -> logging.Logger:
    """librdkafka logs every refused connection; while probing, those are expected."""
    logger = logging.getLogger("tipsync.stack.probe")
    if not logger.handlers:  # probes run every 0.5 s while waiting: one handler, not hundreds
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    return logger


class Kafka(Service):
    name = "kafka"
    variable = config.KAFKA_BOOTSTRAP

    @property
    def host(self) -> str:
        return self.settings.kafka_bootstrap.split(",")[0].rpartition(":")[0] or "127.0.0.1"

    @property
    def local(self) -> bool:
        return is_local(self.host)

    @property
    def port(self) -> int:
        return self.settings.kafka_port

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def address(self) -> str:
        return self.settings.kafka_bootstrap

    def is_up(self) -> bool:
        if self.local and not accepts_tcp("127.0.0.1", self.port):
            return False
        from confluent_kafka.admin import AdminClient

        probe_config: dict[str, Any] = {
            "bootstrap.servers": self.settings.kafka_bootstrap, "logger": _silent_logger()
        }
        admin = AdminClient(probe_config)
        metadata = admin.list_topics(timeout=5)
        return bool(metadata.brokers)

    def _properties(self) -> str:
        data = self.layout.kafka_dir / "data"
        return "\n".join(
            [
                "# tipsync local stack: one KRaft node, broker and controller, loopback only",
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={data}",
                "num.partitions=6",
                # Topics are governed: `tipsync topics create` makes them, typos fail loudly.
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                # The cleaner stays on (changelogs and reconciled topics are compacted) but
                # with a buffer sized for a small heap.
                "log.cleaner.enable=true",
                "log.cleaner.dedupe.buffer.size=33554432",
                "log.retention.hours=168",
                "",
            ]
        )

    def _java(self, main_class: str, *arguments: str) -> list[str]:
        return [
            artifacts.java_executable(),
            "-Xms256m", "-Xmx768m", "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.layout.kafka_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.layout.logs}",
            "-cp", artifacts.kafka_classpath(self.layout),
            main_class, *arguments,
        ]

    def _format_if_needed(self) -> None:
        kafka_dir = self.layout.kafka_dir
        data = kafka_dir / "data"
        kafka_dir.mkdir(parents=True, exist_ok=True)
        properties = kafka_dir / "server.properties"
        properties.write_text(self._properties())
        (kafka_dir / "log4j2.properties").write_text(KAFKA_LOG4J)
        if (data / "meta.properties").is_file():
            return
        if data.exists() and any(data.iterdir()):
            raise StackError(
                f"{data} holds files but no meta.properties (corrupt or foreign state). Run "
                "`tipsync stack reset --yes` to start afresh."
            )
        result = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c",
                       str(properties)),
            capture_output=True, text=True, umask=PRIVATE_UMASK,
        )
        if result.returncode != 0:
            raise StackError(
                f"formatting Kafka's storage in {data} failed:\n{result.stdout}{result.stderr}"
            )

    def start(self) -> None:
        if not self.local or self.is_up():
            return
        require_free_port(self.port, "Kafka", self.variable)
        require_free_port(
            self.controller_port, "Kafka's controller (the Kafka port + 1)", self.variable
        )
        self._format_if_needed()
        self.process = start_background(
            self._java("kafka.Kafka", str(self.layout.kafka_dir / "server.properties")),
            log=self.layout.log(self.name),
            pidfile=self.layout.pidfile(self.name),
            cwd=self.layout.kafka_dir,
        )

    def wait(self) -> None:
        wait_until(
            self.is_up, service="Kafka", timeout=120, process=self.process,
            log=self.layout.log(self.name),
        )


