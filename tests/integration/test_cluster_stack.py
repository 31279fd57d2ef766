"""`tipsync stack up --brokers 3` on the real machine (issue 19): three KRaft nodes, each a
broker and a controller, on a private stack of their own (port base 22300: nodes on 22392,
22492, 22592; the registry 22381, PostgreSQL 22332). `stack status` shows every node and
names the active controller Kafka's own quorum tool names; the topics `tipsync topics create`
makes have three replicas and `min.insync.replicas=2`; a stack with data refuses another
node count; `stack down` stops every node. About three minutes (mostly the stack's start)."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.stack.kafka import cluster_bootstrap
from schemas import config
from schemas.config import Settings, load_settings, local_client_file
from tests.integration.kafka_tools import java_client_config, kafka_tool
from tests.integration.private_stack import private_stack_env, tipsync

PORT_BASE = 22300
BROKERS = 3


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, str]]:
    """A private three-node stack, its environment (the bootstrap list names every node)."""
    home = Path(tempfile.mkdtemp(prefix="cluster-stack-", dir=load_settings().home))
    home.chmod(0o755)  # PostgreSQL's unprivileged user passes through it when we are root
    env = {**private_stack_env(home, PORT_BASE),
           config.KAFKA_BOOTSTRAP: cluster_bootstrap(PORT_BASE + 92, BROKERS)}
    started = tipsync(env, "stack", "up", "--brokers", str(BROKERS))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield env
    finally:
        tipsync(env, "stack", "down")
        shutil.rmtree(home, ignore_errors=True)


def status(env: dict[str, str]) -> dict:
    result = tipsync(env, "stack", "status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_status_shows_three_combined_nodes_up_and_one_active_controller(
    cluster: dict[str, str],
) -> None:
    nodes = status(cluster)["kafka"]["nodes"]
    assert [node["id"] for node in nodes] == [1, 2, 3]
    assert all(node["roles"] == "broker,controller" for node in nodes)
    assert [node["listener"] for node in nodes] == [
        f"SASL_SSL://127.0.0.1:{PORT_BASE + 92 + 100 * index}" for index in range(BROKERS)
    ]
    assert all(node["process_up"] and node["registered"] for node in nodes)
    assert sum(node["active_controller"] for node in nodes) == 1
    # the state folder remembers the count: a plain `stack up` keeps three nodes
    marker = json.loads((Path(cluster[config.HOME]) / "tipsync-state.json").read_text())
    assert marker["brokers"] == BROKERS


def test_the_active_controller_is_the_one_kafkas_quorum_tool_names(
    cluster: dict[str, str], tmp_path: Path,
) -> None:
    settings = load_settings(cluster)
    java_file = java_client_config(local_client_file(settings.home, "admin"), tmp_path)
    described = kafka_tool(
        settings, "org.apache.kafka.tools.MetadataQuorumCommand",
        "--bootstrap-server", settings.kafka_bootstrap, "--command-config", str(java_file),
        "describe", "--status",
    )
    assert described.returncode == 0, described.stderr[-2000:]
    leader = re.search(r"^LeaderId:\s+(\d+)$", described.stdout, re.MULTILINE)
    voters = re.search(r"^CurrentVoters:\s+(.*)$", described.stdout, re.MULTILINE)
    assert leader and voters, described.stdout
    assert [node["id"] for node in status(cluster)["kafka"]["nodes"]
            if node["active_controller"]] == [int(leader.group(1))]
    assert [voter["id"] for voter in json.loads(voters.group(1))] == [1, 2, 3]


def test_topics_get_three_replicas_and_two_in_sync_for_a_write(cluster: dict[str, str]) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    created = tipsync(cluster, "topics", "create")
    assert created.returncode == 0, created.stdout + created.stderr
    settings: Settings = load_settings(cluster)
    client = settings.client  # the admin's file of the private stack
    admin = AdminClient(client.librdkafka())
    topics = {name: topic for name, topic in admin.list_topics(timeout=30).topics.items()
              if name.startswith("tip.")}
    assert topics
    assert {len(partition.replicas) for topic in topics.values()
            for partition in topic.partitions.values()} == {3}
    name = next(name for name in sorted(topics) if name.startswith("tip.reconciled."))
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    configs = admin.describe_configs([resource])[resource].result()
    assert configs["min.insync.replicas"].value == "2"
    assert configs["unclean.leader.election.enable"].value == "false"
    nodes = status(cluster)["kafka"]["nodes"]
    assert all(node["replicas"] > 0 and node["in_sync_replicas"] == node["replicas"]
               for node in nodes), nodes


def test_a_stack_with_data_refuses_another_node_count(cluster: dict[str, str]) -> None:
    refused = tipsync(cluster, "stack", "up", "--brokers", "1")
    assert refused.returncode == 1
    assert "has 3 Kafka node(s) with data; it cannot become 1" in refused.stderr
    assert "tipsync stack reset --yes" in refused.stderr


def test_down_stops_every_node(cluster: dict[str, str]) -> None:
    # last in the module: the fixture's own `down` then finds nothing running
    stopped = tipsync(cluster, "stack", "down")
    assert stopped.returncode == 0 and "kafka" in stopped.stdout
    nodes = status_after_down(cluster)
    assert not any(node["process_up"] for node in nodes)
    assert not list((Path(cluster[config.HOME]) / "run").glob("kafka*.pid"))


def status_after_down(env: dict[str, str]) -> list[dict]:
    result = tipsync(env, "stack", "status", "--json")
    assert result.returncode == 1  # nothing answers
    return json.loads(result.stdout)["kafka"]["nodes"]
