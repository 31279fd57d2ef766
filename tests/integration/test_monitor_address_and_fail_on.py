"""Operator signals on the real stack: the monitor listens on TIPSYNC_METRICS_ADDRESS, serves
tipsync_build_info and each agency topic's activity (messages, last message time), and
``tipsync lag --fail-on`` exits 1 for a stopped group and 0 once it caught up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from schemas import config
from schemas.config import Settings
from schemas.topics import TopicNames

# another loopback address: the monitor is reachable there and not on 127.0.0.1 only if it
# really listens where the setting says
ADDRESS = "127.0.0.2"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((ADDRESS, 0))
        return int(probe.getsockname()[1])


def scrape(address: str, port: int) -> str | None:
    try:
        return httpx.get(f"http://{address}:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None


def value(text: str, prefix: str) -> float:
    [line] = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(line.rsplit(" ", 1)[1])


def tipsync(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.cli", *arguments],
                          capture_output=True, text=True, timeout=180)


def test_the_monitor_serves_agency_activity_and_build_info_on_the_configured_address(
    stack: Settings, tmp_path: Path,
) -> None:
    names = TopicNames(f"sig{uuid.uuid4().hex[:8]}")
    topic = names.agency("customs", "case")
    admin = AdminClient(stack.client.librdkafka())
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result()
    producer = Producer(stack.client.librdkafka())
    before = time.time()
    for index in range(5):
        producer.produce(topic, key=f"customs:SIG-{index}", value=b"synthetic")
    assert producer.flush(30) == 0
    port = free_port()
    monitor = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "monitor", "--port", str(port), "--every", "1",
         "--topic-root", names.root, "--group-prefix", names.root],
        env={**os.environ, config.METRICS_ADDRESS: ADDRESS, config.HOME: str(tmp_path)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline, text = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            text = scrape(ADDRESS, port)
            if text and "tipsync_agency_last_message_timestamp_seconds{" in text:
                break
            time.sleep(0.5)
        assert text is not None, "the monitor never answered on " + ADDRESS
        assert scrape("127.0.0.1", port) is None  # not on another address
    finally:
        monitor.send_signal(signal.SIGTERM)
        _, stderr = monitor.communicate(timeout=30)
        admin.delete_topics([topic])[topic].result()
    labels = '{agency="customs",entity="case"}'
    assert value(text, f"tipsync_agency_messages_total{labels}") == 5, stderr
    last = value(text, f"tipsync_agency_last_message_timestamp_seconds{labels}")
    assert before - 1 <= last <= time.time()
    assert 'tipsync_build_info{' in text and 'process="monitor"' in text


def test_lag_fail_on_exits_1_for_a_stopped_group_and_0_once_it_caught_up(stack: Settings) -> None:
    topic, group = f"sig-lag-{uuid.uuid4().hex[:8]}", f"sig-lag-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(stack.client.librdkafka())
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    producer = Producer(stack.client.librdkafka())
    for index in range(4):
        producer.produce(topic, key=f"k{index}", value=b"synthetic")
    assert producer.flush(30) == 0
    consumer = Consumer(stack.client.librdkafka({"group.id": group}))
    consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    consumer.close()  # behind by 3 and no member: STOP
    try:
        stopped = tipsync("lag", "--group", group, "--samples", "1", "--fail-on", "STALL")
        assert stopped.returncode == 1, stopped.stdout + stopped.stderr
        assert f"{group} (STOP)" in stopped.stderr and "[STOP]" in stopped.stdout
        at_stop = tipsync("lag", "--group", group, "--samples", "1", "--fail-on", "STOP")
        assert at_stop.returncode == 1
        consumer = Consumer(stack.client.librdkafka({"group.id": group}))
        consumer.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
        consumer.close()  # caught up: OK
        caught_up = tipsync("lag", "--group", group, "--samples", "1", "--fail-on", "WARN")
        assert caught_up.returncode == 0, caught_up.stdout + caught_up.stderr
    finally:
        admin.delete_topics([topic])[topic].result()
        admin.delete_consumer_groups([group])[group].result()
