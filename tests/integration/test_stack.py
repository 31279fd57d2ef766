"""The local stack itself: real Kafka, a real registry and a real PostgreSQL on loopback.

The restart test runs a second, private stack (own state folder and ports, shared download
cache) so it can stop and start it without disturbing the shared one.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from private_stack import running_private_stack, tipsync

from schemas.config import Settings


def our_processes(home: Path) -> list[str]:
    """Command lines of live processes that mention the state folder."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = (proc / "status").read_text()
        except OSError:
            continue
        if str(home) in cmdline and "State:\tZ" not in status:
            found.append(cmdline)
    return found


def test_topic_create_produce_and_consume(settings: Settings) -> None:
    topic = f"test.stack.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result()
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all"})
    for number in range(3):
        producer.produce(topic, key=f"k{number}", value=f"v{number}")
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"test-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    values = []
    deadline = time.monotonic() + 30
    while len(values) < 3 and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            values.append(message.value().decode())
    consumer.close()
    admin.delete_topics([topic])
    assert values == ["v0", "v1", "v2"]


def test_postgresql_round_trip(settings: Settings) -> None:
    with psycopg.connect(settings.database_url) as connection:
        connection.execute("create temporary table round_trip (id int, name text)")
        connection.execute("insert into round_trip values (%s, %s)", (7, "synthetic"))
        assert connection.execute("select id, name from round_trip").fetchall() == [
            (7, "synthetic")
        ]
        assert connection.execute(
            "select 1 from pg_extension where extname = 'pg_trgm'"
        ).fetchone() == (1,)


def test_the_app_role_is_not_a_superuser(settings: Settings) -> None:
    with psycopg.connect(settings.database_url) as connection:
        row = connection.execute(
            "select rolsuper, rolcreaterole from pg_roles where rolname = current_user"
        ).fetchone()
    assert row == (False, False)


@pytest.fixture(scope="module")
def private_stack() -> Iterator[dict[str, str]]:
    with running_private_stack(port_base=29000) as env:
        yield env


def test_up_twice_is_a_no_op(private_stack: dict[str, str]) -> None:
    again = tipsync(private_stack, "stack", "up")
    assert again.returncode == 0, again.stderr
    assert "already up: postgres, kafka, registry" in again.stdout
    status = tipsync(private_stack, "stack", "status", "--json")
    report = json.loads(status.stdout)
    assert {name: fields["up"] for name, fields in report.items()} == {
        "kafka": True, "registry": True, "postgres": True,
    }
    assert report["kafka"]["bootstrap"] == private_stack["TIPSYNC_KAFKA_BOOTSTRAP"]
    assert report["registry"]["url"] == private_stack["TIPSYNC_REGISTRY_URL"]
    assert report["postgres"]["dsn"] == private_stack["TIPSYNC_DATABASE_URL"]


def test_schemas_survive_down_and_up_and_down_leaves_nothing(
    private_stack: dict[str, str],
) -> None:
    registry_url = private_stack["TIPSYNC_REGISTRY_URL"]
    subject = f"test.stack.Sample-{uuid.uuid4().hex[:8]}"
    schema = Schema(
        json.dumps(
            {"type": "record", "name": "Sample", "namespace": "test.stack",
             "fields": [{"name": "id", "type": "string"}]}
        ),
        "AVRO",
    )
    registered_id = SchemaRegistryClient({"url": registry_url}).register_schema(subject, schema)

    down = tipsync(private_stack, "stack", "down")
    assert down.returncode == 0, down.stderr
    home = Path(private_stack["TIPSYNC_HOME"])
    deadline = time.monotonic() + 20
    while our_processes(home) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert our_processes(home) == []
    status = tipsync(private_stack, "stack", "status", "--json")
    assert status.returncode == 1
    assert not any(fields["up"] for fields in json.loads(status.stdout).values())

    up = tipsync(private_stack, "stack", "up")
    assert up.returncode == 0, up.stderr
    latest = SchemaRegistryClient({"url": registry_url}).get_latest_version(subject)
    assert latest.schema_id == registered_id
    assert json.loads(latest.schema.schema_str)["name"] == "Sample"
