"""The local stack's Kafka cluster (``stack up --brokers 3``) without starting it: node ports
and folders, each node's configuration, the node count the state folder remembers, and how the
active controller is read from the nodes' quorum state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.stack.kafka import Kafka, cluster_bootstrap, quorum_state
from deploy.stack.layout import StackError, StateLayout
from deploy.stack.stack import LocalStack
from schemas.config import load_settings


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")


def cluster(home: Path, brokers: int = 3) -> Kafka:
    settings = load_settings({"TIPSYNC_HOME": str(home),
                              "TIPSYNC_KAFKA_BOOTSTRAP": "127.0.0.1:22092"})
    return Kafka(settings, StateLayout.of(settings), brokers)


def test_node_i_listens_100_ports_further_and_keeps_its_own_folder(tmp_path: Path) -> None:
    nodes = cluster(tmp_path).nodes
    assert [(node.node_id, node.port, node.controller_port) for node in nodes] == [
        (1, 22092, 22093), (2, 22192, 22193), (3, 22292, 22293)]
    assert [node.folder.name for node in nodes] == ["kafka", "kafka-2", "kafka-3"]
    assert [node.name for node in nodes] == ["kafka", "kafka-2", "kafka-3"]
    assert cluster_bootstrap(22092, 3) == "127.0.0.1:22092,127.0.0.1:22192,127.0.0.1:22292"
    assert cluster_bootstrap(22092, 1) == "127.0.0.1:22092"


def test_every_node_votes_in_one_static_quorum_and_replicates_three_times(
    tmp_path: Path,
) -> None:
    kafka = cluster(tmp_path)
    second = properties(kafka._properties(kafka.node(2)))
    assert second["node.id"] == "2"
    assert second["process.roles"] == "broker,controller"
    assert second["controller.quorum.voters"] == (
        "1@127.0.0.1:22093,2@127.0.0.1:22193,3@127.0.0.1:22293")
    assert second["listeners"] == "SASL_SSL://127.0.0.1:22192,CONTROLLER://127.0.0.1:22193"
    assert second["advertised.listeners"] == "SASL_SSL://127.0.0.1:22192"
    assert second["log.dirs"] == str(tmp_path / "kafka-2" / "data")
    # replication authenticated over TLS, as clients are
    assert second["inter.broker.listener.name"] == "SASL_SSL"
    assert second["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert second["allow.everyone.if.no.acl.found"] == "false"
    assert second["default.replication.factor"] == "3"
    assert second["min.insync.replicas"] == "2"
    assert second["unclean.leader.election.enable"] == "false"
    assert second["offsets.topic.replication.factor"] == "3"
    assert second["transaction.state.log.min.isr"] == "2"


def test_one_node_keeps_its_single_node_configuration(tmp_path: Path) -> None:
    single = properties(cluster(tmp_path, brokers=1)._properties())
    assert single["controller.quorum.voters"] == "1@127.0.0.1:22093"
    assert single["offsets.topic.replication.factor"] == "1"
    assert "default.replication.factor" not in single  # Kafka's default: 1
    assert "min.insync.replicas" not in single


def test_a_node_count_without_a_majority_to_lose_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="give --brokers 1, 3, 5"):
        cluster(tmp_path, brokers=2)


def test_the_state_folder_remembers_the_node_count(tmp_path: Path) -> None:
    settings = load_settings({"TIPSYNC_HOME": str(tmp_path)})
    asked = LocalStack(settings, brokers=3)
    asked.check_state_folder()
    asked.settle_node_count()
    assert json.loads((tmp_path / "tipsync-state.json").read_text())["brokers"] == 3
    assert LocalStack(settings).kafka.brokers == 3
    asked.reset()  # a reset keeps the count: the next `up` starts three nodes afresh
    assert LocalStack(settings).kafka.brokers == 3


def test_a_reset_of_a_folder_not_made_yet_remembers_the_count_asked_for(tmp_path: Path) -> None:
    settings = load_settings({"TIPSYNC_HOME": str(tmp_path / "new")})
    LocalStack(settings, brokers=3).reset()  # what `bench faults --brokers 3` does first
    assert LocalStack(settings).kafka.brokers == 3


def test_a_stack_with_data_refuses_another_node_count(tmp_path: Path) -> None:
    settings = load_settings({"TIPSYNC_HOME": str(tmp_path)})
    LocalStack(settings).check_state_folder()  # a one-node stack
    data = tmp_path / "kafka" / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("cluster.id=abc\nnode.id=1\n")
    with pytest.raises(StackError, match="has 1 Kafka node\\(s\\) with data; it cannot become 3"):
        LocalStack(settings, brokers=3).settle_node_count()


def test_a_bootstrap_list_naming_one_node_of_three_gets_a_note(tmp_path: Path) -> None:
    one = load_settings({"TIPSYNC_HOME": str(tmp_path),
                         "TIPSYNC_KAFKA_BOOTSTRAP": "127.0.0.1:22092"})
    note = LocalStack(one, brokers=3).bootstrap_note()
    assert note is not None
    assert "TIPSYNC_KAFKA_BOOTSTRAP=127.0.0.1:22092,127.0.0.1:22192,127.0.0.1:22292" in note
    every = load_settings({"TIPSYNC_HOME": str(tmp_path),
                           "TIPSYNC_KAFKA_BOOTSTRAP": cluster_bootstrap(22092, 3)})
    assert LocalStack(every, brokers=3).bootstrap_note() is None


def test_the_active_controller_is_the_leader_of_the_newest_election(tmp_path: Path) -> None:
    kafka = cluster(tmp_path)
    node = kafka.node(2)
    assert quorum_state(node) is None  # never started
    folder = node.data / "__cluster_metadata-0"
    folder.mkdir(parents=True)
    # the file as Kafka 4.1 writes it (read from a running node of the local stack)
    (folder / "quorum-state").write_text(
        '{"clusterId":"","leaderId":2,"leaderEpoch":4,"votedId":-1,"appliedOffset":0,'
        '"currentVoters":[{"voterId":1},{"voterId":2},{"voterId":3}],"data_version":0}')
    assert quorum_state(node) == (4, 2)
    (folder / "quorum-state").write_text('{"leaderId":-1,"leaderEpoch":5,"votedId":3}')
    assert quorum_state(node) is None  # an election under way: no leader yet
