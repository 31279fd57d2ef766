"""Metrics endpoints after a run, on the real stack: the operator's monitor (lag, freshness),
the stream app and the sink serve the names documented in deploy/operations/metric_names.py
with sensible values."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from deploy.cli import build_parser
from deploy.operations.metric_names import OPERATIONS, SINK, STREAM
from producers.synthetic import write_person_csv
from schemas.config import Settings
from sinks.migrate import migrate

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> list[tuple[str, str, float]]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            samples.append((match[1], match[2] or "", float(match[3])))
    return samples


def total(samples, name: str, **labels: str) -> float:
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(value for metric, label_text, value in samples
               if metric == name and all(item in label_text for item in wanted))


def exposed_names(samples, prefix: str) -> set[str]:
    """Series names under ``prefix``; prometheus-client's ``*_created`` companions (the time a
    counter or histogram was created) are left out, they are not separate metrics."""
    return {name for name, _, _ in samples
            if name.startswith(prefix) and not name.endswith("_created")}


def scrape_until(port: int, ready, timeout: float = 60.0) -> list[tuple[str, str, float]]:
    deadline = time.monotonic() + timeout
    samples: list[tuple[str, str, float]] = []
    while time.monotonic() < deadline:
        try:
            samples = scrape(port)
            if ready(samples):
                return samples
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return samples


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", *args], env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return stderr


@pytest.fixture
def reconciled_database(settings: Settings) -> Iterator[str]:
    name = f"tipsync_test_metrics_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    uri = urlunsplit(urlsplit(settings.database_url)._replace(path=f"/{name}"))
    try:
        migrate(uri)
        yield uri
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_monitor_serves_lag_and_freshness_with_the_documented_names(
    settings: Settings, reconciled_database: str, tmp_path: Path
):
    topic, group = f"test-lagm-{uuid.uuid4().hex[:10]}", f"test-lagm-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for index in range(7):
        producer.produce(topic, key=f"synthetic-{index}", value=b"synthetic")
    producer.flush(10)
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group})
    consumer.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    consumer.close()
    port = free_port()
    monitor = start("monitor", "--port", str(port), "--every", "1", "--group", group,
                    env={"TIPSYNC_DATABASE_URL": reconciled_database,
                         "TIPSYNC_HOME": str(tmp_path)})
    try:
        scrape_until(port, lambda samples: total(
            samples, "tipsync_operations_last_poll_timestamp_seconds") > 0, timeout=30)
        # A change becomes visible after the monitor started: its age is about 5 s.
        with psycopg.connect(reconciled_database) as connection:
            connection.execute(
                "INSERT INTO reconciled.person_source (agency_id, source_record_id, person_id,"
                " source_version, event_time) VALUES ('immigration', 'synthetic-1',"
                " gen_random_uuid(), 1, now() - interval '5 seconds')"
            )
        samples = scrape_until(
            port, lambda samples: total(samples, "tipsync_freshness_seconds_count") >= 1,
            timeout=30,
        )
    finally:
        stderr = stop(monitor)
        admin.delete_topics([topic])[topic].result()
        admin.delete_consumer_groups([group])[group].result()

    names = exposed_names(samples, "tipsync_")
    documented = {series for metric in OPERATIONS for series in metric.series()}
    assert {"tipsync_lag_messages", "tipsync_freshness_seconds_bucket"} <= names, stderr
    assert names <= documented
    assert total(samples, "tipsync_lag_messages", group=group, topic=topic) == 4
    assert total(samples, "tipsync_lag_status", group=group, status="STOP") == 1
    assert total(samples, "tipsync_lag_status", group=group, status="OK") == 0
    assert total(samples, "tipsync_freshness_seconds_count") == 1
    assert 5 <= total(samples, "tipsync_freshness_seconds_sum") < 5 + 10
    assert total(samples, "tipsync_freshness_seconds_bucket", le="10.0") == 1
    assert total(samples, "tipsync_freshness_seconds_bucket", le="2.0") == 0


def _has_command(name: str) -> bool:
    return name in build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]


LZ4_MISSING = importlib.util.find_spec("lz4") is None


@pytest.mark.xfail(
    LZ4_MISSING,
    reason="producers compress with lz4 (producers/delivery.py) but the package lz4, which"
    " aiokafka needs to read it, is not installed: the stream app fails with"
    " UnsupportedCodecError and reads nothing",
    strict=False,
)
def test_stream_metrics_endpoint_serves_documented_names_after_a_run(
    settings: Settings, tmp_path: Path
):
    if not _has_command("stream"):
        pytest.xfail("`tipsync stream` is not registered in deploy/cli.py yet, so the stream"
                     " app cannot be started from the command line")
    base = f"test-lagm-{uuid.uuid4().hex[:8]}"
    port = free_port()
    records = 20
    export = write_person_csv(tmp_path / "people.csv", records)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    topics = [f"{base}-tip.agency.immigration.{entity}" for entity in ("person", "link")]
    for future in admin.create_topics([NewTopic(topic, 3, 1) for topic in topics]).values():
        future.result()
    stream = start("stream", "--prefix", f"{base}-tip", "--store", "memory",
                   "--metrics-port", str(port), "--discovery-interval", "2",
                   env={"TIPSYNC_HOME": str(tmp_path)})
    try:
        produced = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "produce", "--agency", "immigration",
             "--entity", "person", "--file", str(export), "--topic-prefix", f"{base}-",
             "--no-progress"],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "TIPSYNC_HOME": str(tmp_path)},
        )
        assert produced.returncode == 0, produced.stderr
        samples = scrape_until(
            port,
            lambda samples: total(samples, "tipsync_stream_events_in_total") >= records,
            timeout=45,
        )
        assert total(samples, "tipsync_stream_events_in_total") >= records, "nothing consumed"
        drained = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "lag", "--wait-zero", "--timeout", "60",
             "--group", f"{base}-tip.internal.stream", "--history",
             str(tmp_path / "history.json")],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        stderr = stop(stream)
        admin.delete_topics(topics)
    assert total(samples, "tipsync_stream_events_in_total", agency="immigration",
                 entity="person") == records, stderr
    assert total(samples, "tipsync_stream_events_accepted_total") == records
    documented = {series for metric in STREAM for series in metric.series()}
    exposed = exposed_names(samples, "tipsync_stream_")
    assert exposed and exposed <= documented
    assert drained.returncode == 0, drained.stderr


SINK_HAS_METRICS = any(
    "prometheus" in path.read_text(encoding="utf-8")
    for path in (Path(__file__).resolve().parents[2] / "sinks").glob("*.py")
)


@pytest.mark.xfail(
    not SINK_HAS_METRICS,
    reason="the sink exposes no Prometheus endpoint yet (nothing in sinks/ uses"
    " prometheus-client); docs/OPERATIONS.md lists the agreed tipsync_sink_* names",
    strict=False,
)
def test_sink_metrics_endpoint_serves_documented_names(
    settings: Settings, reconciled_database: str, tmp_path: Path
):
    port = free_port()
    sink = start("sink", "--database-url", reconciled_database,
                 "--group", f"test-lagm-sink-{uuid.uuid4().hex[:8]}",
                 env={"TIPSYNC_SINK_METRICS_PORT": str(port), "TIPSYNC_HOME": str(tmp_path)})
    try:
        samples = scrape_until(
            port, lambda samples: any(name.startswith("tipsync_sink_") for name, _, _ in samples),
            timeout=15,
        )
    finally:
        stderr = stop(sink)
    documented = {series for metric in SINK for series in metric.series()}
    exposed = exposed_names(samples, "tipsync_sink_")
    assert exposed, f"nothing served on port {port}: {stderr[-500:]}"
    assert exposed <= documented
