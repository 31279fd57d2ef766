"""The local stack's Kafka: one KRaft node (broker and controller) on loopback, secure.

- Client listener ``SASL_SSL`` with SCRAM-SHA-512 on the Kafka port: TLS with the stack's
  server certificate (``deploy.stack.tls``, Kafka's PEM key store: an unencrypted PKCS#8 key
  and the chain in one file, which Kafka 4.1 reads without ``ssl.key.password``), and a
  password per principal, checked against the salted SCRAM credential in the cluster's
  metadata. Inter-broker traffic (this node to itself) uses the same listener as ``admin``.
- Controller listener ``SASL_PLAINTEXT`` with PLAIN on the Kafka port + 1, 127.0.0.1 only:
  KRaft cannot check SCRAM there (the credentials live in the metadata the controller serves),
  and without authentication the broker would reach the controller as ``User:ANONYMOUS``,
  which would have to be a super user, and so would anyone who can open that port. With PLAIN
  the only accepted user is ``admin``, whose password is in ``server.properties`` (0600).
- ``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false``; ``User:admin`` is the
  only super user. Every other principal gets the ACLs of ``deploy.stack.acls``.

The admin's SCRAM credential is written into the metadata log when the storage is formatted
(StorageTool ``--add-scram``). StorageTool only takes it as an argument, so the arguments go
to the JVM in an argument file (``java @file``, mode 0600, deleted afterwards): the secret
never shows in a command line (``/proc/<pid>/cmdline``, ``ps``).
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import uuid
from collections.abc import Callable

from deploy.stack import artifacts
from deploy.stack.layout import PRIVATE_UMASK, StackError
from deploy.stack.principals import ADMIN, service_secrets
from deploy.stack.processes import (
    require_free_port,
    start_background,
    wait_until,
)
from deploy.stack.services import Service, accepts_tcp, is_local
from deploy.stack.tls import ensure_tls
from schemas import config
from schemas.client_config import ClientConfig, load_client_config

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

    def admin_client(self) -> ClientConfig:
        """How the stack itself talks to Kafka: as ``admin``, with the admin's client
        properties file (``stack up`` writes it before Kafka starts)."""
        path = config.local_client_file(self.layout.home, ADMIN)
        return load_client_config(
            path, default_bootstrap=self.settings.kafka_bootstrap,
            default_registry_url=self.settings.registry_url, named_by="the local stack",
        )

    def is_up(self) -> bool:
        if self.local and not accepts_tcp("127.0.0.1", self.port):
            return False
        from confluent_kafka.admin import AdminClient

        probe_config = self.admin_client().librdkafka({"logger": _silent_logger()})
        admin = AdminClient(probe_config)
        metadata = admin.list_topics(timeout=5)
        return bool(metadata.brokers)

    def _security(self) -> list[str]:
        """The listeners' TLS and SASL settings and the authorizer (see the module's text)."""
        tls = ensure_tls(self.layout.secrets)
        secret = service_secrets(self.layout)[ADMIN]
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        return [
            f"listeners=SASL_SSL://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=SASL_SSL://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=SASL_SSL",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            f'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram} required'
            f' username="{ADMIN}" password="{secret}";',
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            "sasl.mechanism.controller.protocol=PLAIN",
            f'listener.name.controller.plain.sasl.jaas.config={plain} required'
            f' username="{ADMIN}" password="{secret}" user_{ADMIN}="{secret}";',
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={tls.server_bundle}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={tls.ca}",
            "ssl.client.auth=none",
            "ssl.enabled.protocols=TLSv1.3,TLSv1.2",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            f"super.users=User:{ADMIN}",
        ]

    def _properties(self) -> str:
        data = self.layout.kafka_dir / "data"
        return "\n".join(
            [
                "# tipsync local stack: one KRaft node, broker and controller, loopback only.",
                "# Holds the admin's secret: mode 0600, never copied.",
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                *self._security(),
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
        return [*self._jvm(), main_class, *arguments]

    def _jvm(self) -> list[str]:
        return [
            artifacts.java_executable(),
            "-Xms256m", "-Xmx768m", "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.layout.kafka_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.layout.logs}",
            "-cp", artifacts.kafka_classpath(self.layout),
        ]

    def _format_if_needed(self) -> None:
        kafka_dir = self.layout.kafka_dir
        data = kafka_dir / "data"
        kafka_dir.mkdir(parents=True, exist_ok=True)
        properties = kafka_dir / "server.properties"
        properties.touch(mode=0o600, exist_ok=True)
        properties.chmod(0o600)
        properties.write_text(self._properties())
        (kafka_dir / "log4j2.properties").write_text(KAFKA_LOG4J)
        if (data / "meta.properties").is_file():
            return
        if data.exists() and any(data.iterdir()):
            raise StackError(
                f"{data} holds files but no meta.properties (corrupt or foreign state). Run "
                "`tipsync stack reset --yes` to start afresh."
            )
        secret = service_secrets(self.layout)[ADMIN]
        # The JVM reads the main class and its arguments from this file (``java @file``): the
        # admin's secret is never on a command line.
        arguments = kafka_dir / "format.args"
        arguments.touch(mode=0o600, exist_ok=True)
        arguments.chmod(0o600)
        arguments.write_text(" ".join([
            "kafka.tools.StorageTool", "format", "-t", new_cluster_id(),
            "-c", f'"{properties}"',
            "--add-scram", f"SCRAM-SHA-512=[name={ADMIN},password={secret}]",
        ]) + "\n")
        try:
            result = subprocess.run(
                [*self._jvm(), f"@{arguments}"],
                capture_output=True, text=True, umask=PRIVATE_UMASK,
            )
        finally:
            arguments.unlink(missing_ok=True)
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


