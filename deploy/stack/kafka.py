"""The local stack's Kafka: one KRaft node (broker and controller) on loopback, secure; or,
with ``tipsync stack up --brokers 3``, a cluster of three such nodes (below).

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

A cluster (``--brokers 3`` or 5) is made of combined nodes, each a broker and a controller:
node i listens for clients on the Kafka port + 100 (i - 1) and for controllers on that + 1,
keeps its files in ``kafka/`` (node 1) or ``kafka-<i>/``, and runs the same security. The
controllers form a static quorum (``controller.quorum.voters`` names every node; the nodes are
formatted with one cluster id): three JVMs, not six, on a machine of two cores, and a quorum
that a local stack never resizes. Brokers replicate over the ``SASL_SSL`` listener as
``admin`` (SCRAM, TLS with host name checks), controllers talk over the controller listener
(PLAIN, as above). Topics get the cluster's defaults: three replicas, ``min.insync.replicas=2``
(a write acknowledged by ``acks=all`` is on two nodes at least), unclean leader election off;
one node may be lost without losing a write or stopping one.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.stack import artifacts
from deploy.stack.admin_credential import admin_refused, repair_admin_credential
from deploy.stack.layout import PRIVATE_UMASK, StackError, StateLayout
from deploy.stack.principals import ADMIN, forget_previous_admin_secrets, service_secrets
from deploy.stack.principals import store_path as principals_store_path
from deploy.stack.processes import (
    kill_process,
    process_mentions,
    read_pid,
    require_free_port,
    start_background,
    stop_process,
    wait_until,
)
from deploy.stack.services import Service, accepts_tcp, is_local
from deploy.stack.tls import ensure_tls
from schemas import config
from schemas.client_config import ClientConfig, load_client_config
from schemas.config import Settings
from schemas.topics import TOPICS

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


# How many nodes a local stack may have: one, or a quorum that survives losing one (three) or
# two (five) nodes. An even count adds a node without adding a loss the quorum survives.
NODE_COUNTS: tuple[int, ...] = (1, 3, 5)
# Node i's client port is the Kafka port + NODE_PORT_STEP * (i - 1); its controller port + 1.
NODE_PORT_STEP = 100
# Replicas of every topic of a cluster, and how many must have a write before ``acks=all``
# returns: one node may be lost without losing a write or refusing one.
CLUSTER_REPLICATION_FACTOR = 3
CLUSTER_MIN_INSYNC_REPLICAS = 2
ROLES = "broker,controller"


@dataclass(frozen=True)
class KafkaNode:
    """One KRaft node of the local stack (a broker and a controller)."""

    node_id: int
    port: int
    folder: Path

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def name(self) -> str:
        """Its log and pid file's name: ``kafka`` for node 1, ``kafka-<i>`` for node i."""
        return "kafka" if self.node_id == 1 else f"kafka-{self.node_id}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def properties(self) -> Path:
        return self.folder / "server.properties"


def cluster_nodes(layout: StateLayout, first_port: int, count: int) -> list[KafkaNode]:
    return [KafkaNode(node_id, first_port + NODE_PORT_STEP * (node_id - 1),
                      layout.kafka_node_dir(node_id))
            for node_id in range(1, count + 1)]


def cluster_bootstrap(first_port: int, count: int) -> str:
    """The bootstrap list that names every node of a local cluster (what
    the Kafka bootstrap variable should hold, so a client starting while one node is down
    still finds the others)."""
    return ",".join(f"127.0.0.1:{first_port + NODE_PORT_STEP * index}" for index in range(count))


def check_node_count(count: int) -> int:
    if count not in NODE_COUNTS:
        raise StackError(
            f"a local stack of {count} Kafka nodes is not offered: give --brokers "
            f"{', '.join(map(str, NODE_COUNTS))} (an odd count: the controllers' quorum needs "
            "a majority alive)"
        )
    return count


def _cluster_id_of(data: Path) -> str | None:
    """The cluster id a formatted node's ``meta.properties`` holds."""
    try:
        lines = (data / "meta.properties").read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "cluster.id":
            return value.strip()
    return None


def quorum_state(node: KafkaNode) -> tuple[int, int] | None:
    """(leader epoch, leader id) as ``node`` last recorded it in its metadata log's
    ``quorum-state`` file (written by KRaft at every election it sees), or None."""
    try:
        state = json.loads((node.data / "__cluster_metadata-0" / "quorum-state").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    leader, epoch = state.get("leaderId", -1), state.get("leaderEpoch", -1)
    return (epoch, leader) if isinstance(leader, int) and leader >= 0 else None


def _silent_logger() -> logging.Logger:
    """librdkafka logs every refused connection; while probing, those are expected."""
    logger = logging.getLogger("tipsync.stack.probe")
    if not logger.handlers:  # probes run every 0.5 s while waiting: one handler, not hundreds
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    return logger


class Kafka(Service):
    """The local stack's Kafka: ``brokers`` KRaft nodes (one by default)."""

    name = "kafka"
    variable = config.KAFKA_BOOTSTRAP

    def __init__(self, settings: Settings, layout: StateLayout, brokers: int = 1) -> None:
        super().__init__(settings, layout)
        self.brokers = check_node_count(brokers)
        self.started: dict[int, subprocess.Popen[bytes]] = {}

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

    @property
    def nodes(self) -> list[KafkaNode]:
        return cluster_nodes(self.layout, self.port, self.brokers)

    def node(self, node_id: int) -> KafkaNode:
        return self.nodes[node_id - 1]

    def admin_client(self) -> ClientConfig:
        """How the stack itself talks to Kafka: as ``admin``, with the admin's client
        properties file (``stack up`` writes it before Kafka starts)."""
        path = config.local_client_file(self.layout.home, ADMIN)
        return load_client_config(
            path, default_bootstrap=self.settings.kafka_bootstrap,
            default_registry_url=self.settings.registry_url, named_by="the local stack",
        )

    def _metadata(self, timeout: float = 5) -> Any:
        from confluent_kafka.admin import AdminClient

        probe_config = self.admin_client().librdkafka({"logger": _silent_logger()})
        return AdminClient(probe_config).list_topics(timeout=timeout)

    def is_up(self) -> bool:
        """Every node listens and is registered as a broker (one node: it answers)."""
        if self.local and not all(accepts_tcp("127.0.0.1", node.port) for node in self.nodes):
            return False
        brokers = self._metadata().brokers
        return len(brokers) >= self.brokers if self.local else bool(brokers)

    def _security(self, node: KafkaNode | None = None) -> list[str]:
        """The listeners' TLS and SASL settings and the authorizer (see the module's text) of
        a node (node 1 when none is named)."""
        node = node or self.nodes[0]
        tls = ensure_tls(self.layout.secrets)
        secret = service_secrets(self.layout)[ADMIN]
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        return [
            f"listeners=SASL_SSL://127.0.0.1:{node.port},"
            f"CONTROLLER://127.0.0.1:{node.controller_port}",
            f"advertised.listeners=SASL_SSL://127.0.0.1:{node.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=SASL_SSL",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512",
            # KIP-368: a client connection must authenticate again within this time; one
            # whose credential was deleted or replaced meanwhile is closed (docs/SECURITY.md)
            f"listener.name.sasl_ssl.connections.max.reauth.ms={config.kafka_reauth_ms()}",
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

    def _replication(self) -> list[str]:
        """Replicas of Kafka's own topics and the defaults of ours: one of everything on one
        node; on a cluster three replicas, two of them in sync for a write to count."""
        if self.brokers == 1:
            return [
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
            ]
        replicas, in_sync = CLUSTER_REPLICATION_FACTOR, CLUSTER_MIN_INSYNC_REPLICAS
        return [
            # what a topic gets when its creator asks for the cluster's default (tipsync does
            # unless the replication factor setting says otherwise) and sets no min.insync.replicas
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={in_sync}",
            # a replica that missed writes never becomes leader: a lost node loses no write
            "unclean.leader.election.enable=false",
            f"offsets.topic.replication.factor={replicas}",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={in_sync}",
            f"share.coordinator.state.topic.replication.factor={replicas}",
            f"share.coordinator.state.topic.min.isr={in_sync}",
        ]

    def _properties(self, node: KafkaNode | None = None) -> str:
        """``server.properties`` of a node (node 1 when none is named)."""
        node = node or self.nodes[0]
        voters = ",".join(f"{other.node_id}@127.0.0.1:{other.controller_port}"
                          for other in self.nodes)
        title = ("one KRaft node, broker and controller" if self.brokers == 1 else
                 f"node {node.node_id} of {self.brokers} KRaft nodes, each broker and controller")
        return "\n".join(
            [
                f"# tipsync local stack: {title}, loopback only.",
                "# Holds the admin's secret: mode 0600, never copied.",
                f"process.roles={ROLES}",
                f"node.id={node.node_id}",
                f"controller.quorum.voters={voters}",
                *self._security(node),
                f"log.dirs={node.data}",
                "num.partitions=6",
                # Topics are governed: `tipsync topics create` makes them, typos fail loudly.
                "auto.create.topics.enable=false",
                *self._replication(),
                "group.initial.rebalance.delay.ms=0",
                # The cleaner stays on (changelogs and reconciled topics are compacted) but
                # with a buffer sized for a small heap.
                "log.cleaner.enable=true",
                "log.cleaner.dedupe.buffer.size=33554432",
                "log.retention.hours=168",
                "",
            ]
        )

    def _java(self, node: KafkaNode, main_class: str, *arguments: str) -> list[str]:
        return [*self._jvm(node), main_class, *arguments]

    def _jvm(self, node: KafkaNode) -> list[str]:
        return [
            artifacts.java_executable(),
            "-Xms256m", "-Xmx768m", "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={node.folder / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.layout.logs}",
            "-cp", artifacts.kafka_classpath(self.layout),
        ]

    def _format_if_needed(self, nodes: list[KafkaNode]) -> None:
        """Write every node's configuration; format the storage of those never formatted,
        with the cluster id the formatted ones have (a new one for a new stack)."""
        for node in nodes:
            node.folder.mkdir(parents=True, exist_ok=True)
            node.properties.touch(mode=0o600, exist_ok=True)
            node.properties.chmod(0o600)
            node.properties.write_text(self._properties(node))
            (node.folder / "log4j2.properties").write_text(KAFKA_LOG4J)
        known = {cluster for node in self.nodes
                 if (cluster := _cluster_id_of(node.data)) is not None}
        if len(known) > 1:
            raise StackError(
                f"the Kafka nodes of {self.layout.home} belong to different clusters "
                f"({', '.join(sorted(str(cluster) for cluster in known))}). Run "
                "`tipsync stack reset --yes` to start afresh."
            )
        cluster_id = known.pop() if known else new_cluster_id()
        for node in nodes:
            if (node.data / "meta.properties").is_file():
                continue
            if node.data.exists() and any(node.data.iterdir()):
                raise StackError(
                    f"{node.data} holds files but no meta.properties (corrupt or foreign "
                    "state). Run `tipsync stack reset --yes` to start afresh."
                )
            self._format(node, cluster_id)

    def _format(self, node: KafkaNode, cluster_id: str) -> None:
        secret = service_secrets(self.layout)[ADMIN]
        # The JVM reads the main class and its arguments from this file (``java @file``): the
        # admin's secret is never on a command line.
        arguments = node.folder / "format.args"
        arguments.touch(mode=0o600, exist_ok=True)
        arguments.chmod(0o600)
        arguments.write_text(" ".join([
            "kafka.tools.StorageTool", "format", "-t", cluster_id,
            "-c", f'"{node.properties}"',
            "--add-scram", f"SCRAM-SHA-512=[name={ADMIN},password={secret}]",
        ]) + "\n")
        try:
            result = subprocess.run(
                [*self._jvm(node), f"@{arguments}"],
                capture_output=True, text=True, umask=PRIVATE_UMASK,
            )
        finally:
            arguments.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StackError(
                f"formatting Kafka's storage in {node.data} failed:\n"
                f"{result.stdout}{result.stderr}"
            )

    def node_pid(self, node: KafkaNode) -> int | None:
        """The pid of the node's process when it runs and is ours, else None."""
        pid = read_pid(self.layout.pidfile(node.name))
        return pid if pid is not None and process_mentions(pid, str(self.layout.home)) else None

    def start(self) -> None:
        if not self.local or self._answers():
            return
        stopped = [node for node in self.nodes if self.node_pid(node) is None]
        for node in stopped:
            which = "Kafka" if self.brokers == 1 else f"Kafka node {node.node_id}"
            require_free_port(node.port, which, self.variable)
            require_free_port(
                node.controller_port, f"{which}'s controller (its Kafka port + 1)", self.variable
            )
        self._format_if_needed(self.nodes)
        for node in stopped:
            self.start_node(node.node_id)

    def start_node(self, node_id: int) -> None:
        """Start one node (formatted already) without waiting for it."""
        node = self.node(node_id)
        self.started[node_id] = start_background(
            self._java(node, "kafka.Kafka", str(node.properties)),
            log=self.layout.log(node.name),
            pidfile=self.layout.pidfile(node.name),
            cwd=node.folder,
        )

    def wait(self) -> None:
        # the first node started is watched for an early exit; every node must register
        first = min(self.started, default=1)

        def until(check: Callable[[], bool]) -> None:
            wait_until(
                check, service="Kafka", timeout=120, process=self.started.get(first),
                log=self.layout.log(self.node(first).name),
                also_watched=[(process, self.layout.log(self.node(node_id).name))
                              for node_id, process in self.started.items() if node_id != first],
            )

        until(lambda: self._answers() or self.refuses_admin())
        if not self._answers():
            # up, but the metadata log's admin credential is not principals.json's
            # (deploy.stack.admin_credential): set it as the admin of a replaced secret
            logging.getLogger("tipsync.stack").warning(
                "the local Kafka refused the admin's file; setting the admin's credential to"
                " the secret of %s, logged in with a replaced one",
                principals_store_path(self.layout),
            )
            repair_admin_credential(self.layout, self.admin_client())
            until(self.is_up)
        forget_previous_admin_secrets(self.layout)  # the broker takes the current one

    def _answers(self) -> bool:
        try:
            return self.is_up()
        except Exception:  # noqa: BLE001 - not answering yet
            return False

    def refuses_admin(self) -> bool:
        """Every node listens (a broker opens its client listener once it has read the
        metadata) but the admin's file is refused."""
        return (self.local and all(accepts_tcp("127.0.0.1", node.port) for node in self.nodes)
                and admin_refused(self.admin_client()))

    def stop(self) -> bool:
        """Stop every node ``up`` started (the nodes of a bigger stack too); True when there
        was one."""
        stopped = False
        for node in cluster_nodes(self.layout, self.port, max(NODE_COUNTS)):
            pidfile = self.layout.pidfile(node.name)
            pid = read_pid(pidfile)
            if pid is None:
                continue
            stop_process(pid, str(self.layout.home))
            pidfile.unlink(missing_ok=True)
            stopped = True
        return stopped

    def kill_node(self, node_id: int) -> bool:
        """SIGKILL one node, as a machine that dies would stop it (the fault suite's node
        kill); True when it was running."""
        node = self.node(node_id)
        pid = self.node_pid(node)
        if pid is None:
            return False
        kill_process(pid, str(self.layout.home))
        process = self.started.pop(node_id, None)
        if process is not None:
            process.wait()
        return True

    def active_controller(self) -> int | None:
        """The id of the quorum's leader, the active controller, as the running nodes last
        recorded it (the newest election's); None when no running node knows one."""
        seen = [state for node in self.nodes if self.node_pid(node) is not None
                and (state := quorum_state(node)) is not None]
        return max(seen)[1] if seen else None

    def node_report(self) -> list[dict[str, Any]]:
        """Every node: id, roles, listener, whether its process runs and it is registered,
        whether it is the active controller, and in how many replicas of the ``tip.*``
        partitions it holds it is in sync."""
        try:
            metadata = self._metadata()
        except Exception:  # noqa: BLE001 - a cluster that does not answer has no figures
            metadata = None
        registered = set(metadata.brokers) if metadata is not None else set()
        replicas: dict[int, int] = dict.fromkeys(range(1, self.brokers + 1), 0)
        in_sync = dict(replicas)
        prefix = f"{TOPICS.root}."
        for name, topic in (metadata.topics.items() if metadata is not None else ()):
            if not name.startswith(prefix):
                continue
            for partition in topic.partitions.values():
                for node_id in partition.replicas:
                    replicas[node_id] = replicas.get(node_id, 0) + 1
                    in_sync[node_id] = in_sync.get(node_id, 0) + (node_id in partition.isrs)
        controller = self.active_controller()
        return [
            {
                "id": node.node_id,
                "roles": ROLES,
                "listener": f"SASL_SSL://{node.address}",
                "controller_listener": f"CONTROLLER://127.0.0.1:{node.controller_port}",
                "process_up": self.node_pid(node) is not None,
                "pid": self.node_pid(node),
                "registered": node.node_id in registered,
                "active_controller": node.node_id == controller,
                "replicas": replicas.get(node.node_id, 0),
                "in_sync_replicas": in_sync.get(node.node_id, 0),
            }
            for node in self.nodes
        ]
