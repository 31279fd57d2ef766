"""``tipsync lag`` against the real broker and PostgreSQL: the same numbers as Kafka's own
consumer-groups tool, the statuses, the sink's offsets from PostgreSQL, ``--wait-zero``.

Every test uses its own topic and consumer groups (uuid suffix) and its own history file.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from deploy.operations.lag import Status, Thresholds
from deploy.operations.survey import survey_lag
from deploy.stack import kafka_classpath
from deploy.stack.artifacts import java_executable
from schemas.config import Settings
from sinks.migrate import migrate
from tests.integration.kafka_tools import java_client_config

PARTITIONS = 3
PER_PARTITION = 10


def unique(name: str) -> str:
    return f"test-lag-{name}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def admin(settings: Settings) -> AdminClient:
    return AdminClient(settings.client.librdkafka())


@pytest.fixture
def groups(admin: AdminClient) -> Iterator[list[str]]:
    """Names handed out by the test; deleted from the broker afterwards."""
    created: list[str] = []
    yield created
    if created:
        for future in admin.delete_consumer_groups(created, request_timeout=10).values():
            # A group that was never created (or still has a member) cannot be deleted.
            with contextlib.suppress(KafkaException):
                future.result()


@pytest.fixture
def topic(admin: AdminClient, settings: Settings) -> Iterator[str]:
    """A fresh topic holding PER_PARTITION records in each partition, written an hour (plus
    a minute per partition) ago by their timestamps, so lag in seconds is known."""
    name = unique("topic")
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result()
    produce(settings, name, {partition: PER_PARTITION for partition in range(PARTITIONS)},
            age_seconds=lambda partition: 3600 + 60 * partition)
    yield name
    admin.delete_topics([name])[name].result()


def produce(settings: Settings, topic: str, counts: dict[int, int],
            age_seconds=lambda partition: 0) -> None:
    producer = Producer(settings.client.librdkafka())
    now = time.time()
    for partition, count in counts.items():
        for index in range(count):
            producer.produce(
                topic, key=f"synthetic-{index}", value=b"synthetic", partition=partition,
                timestamp=int((now - age_seconds(partition)) * 1000),
            )
    assert producer.flush(15) == 0


COORDINATOR_NOT_READY = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}


def commit(settings: Settings, group: str, topic: str, offsets: dict[int, int]) -> None:
    consumer = Consumer(settings.client.librdkafka(
        {"group.id": group, "enable.auto.commit": False}
    ))
    try:
        # A new group's coordinator may still be loading on a busy broker: Kafka answers
        # NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS, both retriable.
        for attempt in range(20):
            try:
                consumer.commit(
                    offsets=[TopicPartition(topic, partition, offset)
                             for partition, offset in offsets.items()],
                    asynchronous=False,
                )
                return
            except KafkaException as error:
                if error.args[0].code() not in COORDINATOR_NOT_READY or attempt == 19:
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()


def tipsync(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )


def kafka_tool(
    settings: Settings, group_names: list[str], folder: Path
) -> dict[tuple, tuple[int, int, int]]:
    """(group, topic, partition) -> (current offset, log end offset, lag) as Kafka's own
    ConsumerGroupCommand prints them (connected as the admin)."""
    assert settings.client.source is not None
    command = [
        java_executable(), "-cp", kafka_classpath(settings),
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "--bootstrap-server", settings.kafka_bootstrap, "--describe",
        "--command-config", str(java_client_config(settings.client.source, folder)),
    ]
    for group in group_names:
        command += ["--group", group]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[0] in group_names:
            group, topic, partition, current, end, lag = fields[:6]
            rows[(group, topic, int(partition))] = (int(current), int(end), int(lag))
    return rows


def ours(report: dict) -> dict[tuple, tuple[int, int, int]]:
    return {
        (group["group"], partition["topic"], partition["partition"]):
            (partition["committed_offset"], partition["end_offset"], partition["lag"])
        for group in report["groups"]
        for partition in group["partitions"]
        if partition["committed_offset"] is not None
    }


def by_partition(report, group: str) -> dict[int, object]:
    [match] = [candidate for candidate in report if candidate.group == group]
    return {partition.partition: partition for partition in match.partitions}


def test_lag_json_equals_kafkas_consumer_groups_tool_for_stopped_groups(
    settings: Settings, topic: str, groups: list[str], tmp_path: Path
):
    partial, full = unique("partial"), unique("full")
    groups += [partial, full]
    commit(settings, partial, topic, {0: 4, 1: 10})
    commit(settings, full, topic, {0: 10, 1: 0, 2: 7})

    before = kafka_tool(settings, groups, tmp_path)
    result = tipsync("lag", "--json", "--group", partial, "--group", full, "--samples", "1",
                     "--history", str(tmp_path / "history.json"))
    after = kafka_tool(settings, groups, tmp_path)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert before == after  # nothing moved while we looked
    assert ours(report) == before
    assert before[(partial, topic, 0)] == (4, 10, 6)
    # A partition without a commit is listed as such, not as a lag of every message.
    [partial_report] = [group for group in report["groups"] if group["group"] == partial]
    never = partial_report["partitions"][2]
    assert (never["committed_offset"], never["lag"], never["pending"], never["status"]) == (
        None, None, PER_PARTITION, "NO_COMMIT"
    )
    # Lag in seconds is the age of the record at the committed offset (written 1 h ago).
    assert 3600 <= partial_report["partitions"][0]["lag_seconds"] < 3600 + 60
    assert partial_report["partitions"][1]["lag_seconds"] == 0
    [full_report] = [group for group in report["groups"] if group["group"] == full]
    assert 3660 <= full_report["partitions"][1]["lag_seconds"] < 3660 + 60


def test_stopped_consumer_with_new_messages_is_stop_and_caught_up_idle_one_stays_ok(
    settings: Settings, topic: str, groups: list[str], tmp_path: Path
):
    stopped, idle = unique("stopped"), unique("idle")
    groups += [stopped, idle]
    commit(settings, stopped, topic, dict.fromkeys(range(PARTITIONS), PER_PARTITION))
    produce(settings, topic, {0: 5})
    commit(settings, idle, topic, {0: PER_PARTITION + 5, 1: PER_PARTITION, 2: PER_PARTITION})

    report, warnings = survey_lag(settings, groups=[stopped, idle], samples=2, interval=0.5,
                                  history_file=tmp_path / "history.json")

    statuses = {group.group: group.status for group in report}
    assert statuses == {stopped: Status.STOP, idle: Status.OK}
    stopped_partitions = by_partition(report, stopped)
    assert stopped_partitions[0].lag == 5
    assert "no member" in stopped_partitions[0].reason
    assert {stopped_partitions[1].status, stopped_partitions[2].status} == {Status.OK}
    assert all(partition.lag == 0 for partition in by_partition(report, idle).values())


def test_connected_consumer_whose_offset_does_not_move_is_stall(
    settings: Settings, topic: str, groups: list[str], tmp_path: Path
):
    stuck = unique("stuck")
    groups.append(stuck)
    consumer = Consumer(settings.client.librdkafka(
        {"group.id": stuck, "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    ))
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.2)
        assert consumer.assignment(), "the test consumer never joined its group"
        consumer.commit(offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 10),
                                 TopicPartition(topic, 2, 10)], asynchronous=False)
        report, _ = survey_lag(
            settings, groups=[stuck], samples=3, interval=1.0,
            thresholds=Thresholds(stall_after_seconds=1.5, stop_after_seconds=120),
            history_file=tmp_path / "history.json",
        )
    finally:
        consumer.close()
    [group] = report
    assert group.members == 1
    assert group.status is Status.STALL
    assert by_partition(report, stuck)[0].status is Status.STALL
    assert by_partition(report, stuck)[1].status is Status.OK


def test_committed_offset_going_back_between_runs_is_rewind(
    settings: Settings, topic: str, groups: list[str], tmp_path: Path
):
    rewound = unique("rewound")
    groups.append(rewound)
    history = tmp_path / "history.json"
    commit(settings, rewound, topic, {0: 8})
    first, _ = survey_lag(settings, groups=[rewound], samples=1, history_file=history)
    commit(settings, rewound, topic, {0: 2})
    second, _ = survey_lag(settings, groups=[rewound], samples=1, history_file=history)

    assert first[0].status is Status.STOP  # behind, nobody consuming
    assert second[0].status is Status.REWIND
    assert "from 8 to 2" in second[0].partitions[0].reason


@pytest.fixture
def sink_database(settings: Settings) -> Iterator[str]:
    """A throwaway database with the sink's migrations applied; its connection URI."""
    name = f"tipsync_test_lag_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(settings.database_url)
    uri = urlunsplit(parts._replace(path=f"/{name}"))
    try:
        migrate(uri)
        yield uri
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_sink_group_offsets_come_from_postgresql_and_the_group_is_listed(
    settings: Settings, topic: str, groups: list[str], sink_database: str, tmp_path: Path
):
    sink_group = unique("sink")
    groups.append(sink_group)
    # Kafka holds an older commit for the same group name; the store's offsets must win.
    commit(settings, sink_group, topic, {0: 1, 1: 1})
    with psycopg.connect(sink_database) as connection:
        connection.cursor().executemany(
            "INSERT INTO reconciled.sink_offsets (consumer_group, topic, partition, next_offset)"
            " VALUES (%s, %s, %s, %s)",
            [(sink_group, topic, 0, 6), (sink_group, topic, 1, 10)],
        )

    # No --group: the sink's group is found in PostgreSQL (narrowed to this test's name).
    result = tipsync(
        "lag", "--json", "--group-prefix", sink_group, "--samples", "1",
        "--history", str(tmp_path / "history.json"),
        env={"TIPSYNC_DATABASE_URL": sink_database},
    )

    assert result.returncode == 0, result.stderr
    [group] = json.loads(result.stdout)["groups"]
    assert (group["group"], group["offsets_from"]) == (sink_group, "postgresql")
    rows = {partition["partition"]: partition for partition in group["partitions"]}
    assert (rows[0]["committed_offset"], rows[0]["lag"]) == (6, 4)
    assert (rows[1]["committed_offset"], rows[1]["lag"]) == (10, 0)
    assert rows[2]["status"] == "NO_COMMIT"


def test_wait_zero_times_out_while_behind_and_returns_once_drained(
    settings: Settings, topic: str, groups: list[str], tmp_path: Path
):
    draining = unique("draining")
    groups.append(draining)
    commit(settings, draining, topic, {0: 5, 1: 10, 2: 10})
    history = str(tmp_path / "history.json")

    timed_out = tipsync("lag", "--wait-zero", "--timeout", "2", "--interval", "0.5",
                        "--group", draining, "--history", history)
    assert timed_out.returncode == 1
    assert f"{draining}: STOP, 5 messages behind ({topic}[0] lag 5)" in timed_out.stderr

    waiting = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "lag", "--wait-zero", "--timeout", "60",
         "--interval", "0.5", "--group", draining, "--history", history],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    drained_at: list[float] = []

    def drain() -> None:
        time.sleep(2)
        commit(settings, draining, topic, {0: 10})
        drained_at.append(time.time())

    worker = threading.Thread(target=drain)
    worker.start()
    stdout, stderr = waiting.communicate(timeout=90)
    returned_at = time.time()
    worker.join()

    assert waiting.returncode == 0, stderr
    assert f"caught up: {draining}" in stdout
    assert drained_at and returned_at > drained_at[0]
