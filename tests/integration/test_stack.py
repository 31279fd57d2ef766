"""The local stack itself: real Kafka, a real registry and a real PostgreSQL on loopback.

The restart test runs a second, private stack (own state folder and ports, shared download
cache) so it can stop and start it without disturbing the shared one; the state-folder tests
(modes, reset then up) a third.
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import re
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from private_stack import registry_admin_config, running_private_stack, tipsync

from producers.canonical import Entity, columns_of
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
    admin = AdminClient(settings.client.librdkafka())
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result()
    producer = Producer(settings.client.librdkafka({"acks": "all"}))
    for number in range(3):
        producer.produce(topic, key=f"k{number}", value=f"v{number}")
    assert producer.flush(30) == 0
    consumer = Consumer(settings.client.librdkafka({"group.id": f"test-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
        })
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


def test_no_secret_is_on_a_command_line(private_stack: dict[str, str]) -> None:
    home = Path(private_stack["TIPSYNC_HOME"])
    secrets = json.loads((home / "secrets" / "principals.json").read_text()).values()
    command_lines = our_processes(home)
    assert any("kafka.Kafka" in line for line in command_lines)
    assert not [line for line in command_lines for secret in secrets if secret in line]
    assert not (home / "kafka" / "format.args").exists()  # the format's argument file


def test_schemas_survive_down_and_up_and_down_leaves_nothing(
    private_stack: dict[str, str],
) -> None:
    registry = registry_admin_config(private_stack)
    subject = f"test.stack.Sample-{uuid.uuid4().hex[:8]}"
    schema = Schema(
        json.dumps(
            {"type": "record", "name": "Sample", "namespace": "test.stack",
             "fields": [{"name": "id", "type": "string"}]}
        ),
        "AVRO",
    )
    registered_id = SchemaRegistryClient(registry).register_schema(subject, schema)

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
    latest = SchemaRegistryClient(registry).get_latest_version(subject)
    assert latest.schema_id == registered_id
    assert json.loads(latest.schema.schema_str)["name"] == "Sample"


# ------------------------------------------------------------------ the state folder

# When tipsync runs as root, PostgreSQL runs as `postgres` and must pass through these folders
# (relative to the state folder; "." is the folder itself): mode 0711, enter by name, never
# list or read. Nothing else may carry a group or world bit (deploy/stack/layout.py).
TRAVERSED_BY_POSTGRES = {".", "logs"}
RUNNING_AS_ROOT = os.geteuid() == 0


def exposed_to_others(home: Path) -> list[str]:
    """Files and folders under ``home`` (and itself) with any group/world bit beyond the
    traversal above. Modes, not access: as root every access test would pass."""
    exposed = []
    for folder, _, files in os.walk(home):
        for path in (Path(folder), *(Path(folder) / name for name in files)):
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:  # a running service removed it meanwhile
                continue
            if stat.S_ISLNK(mode):
                continue
            name = path.relative_to(home).as_posix()
            traversal = RUNNING_AS_ROOT and stat.S_ISDIR(mode) and name in TRAVERSED_BY_POSTGRES
            if stat.S_IMODE(mode) & 0o077 & ~(0o011 if traversal else 0):
                exposed.append(f"{name} {stat.filemode(mode)}")
    return exposed


@pytest.fixture(scope="module")
def own_stack() -> Iterator[dict[str, str]]:
    # below the ephemeral range (32768-60999), where an outgoing connection may hold a port
    with running_private_stack(port_base=25000) as env:
        yield env


def test_the_state_folder_is_private_to_its_user(
    own_stack: dict[str, str], tmp_path: Path
) -> None:
    home = Path(own_stack["TIPSYNC_HOME"])
    for step in (("schemas", "register"), ("topics", "create"),
                 ("agency", "enroll", "police-ctu")):
        done = tipsync(own_stack, *step)
        assert done.returncode == 0, done.stderr
    columns = list(columns_of(Entity.PERSON))
    export = tmp_path / "people.csv"
    with export.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        # P-2 is rejected: its updated_at cannot be read (a bad optional value would only be
        # flagged, and the test needs a rejects file)
        for record_id, updated_at in (("P-1", "2024-05-01T10:00:00Z"), ("P-2", "yesterday")):
            row = dict.fromkeys(columns, "")
            row.update(source_record_id=record_id, given_name="Ann", family_name="Brown",
                       date_of_birth="1990-05-17", sex="F", updated_at=updated_at)
            writer.writerow(row)
    produced = tipsync(own_stack, "produce", "--agency", "police-ctu", "--entity", "person",
                       "--file", str(export), "--no-progress")
    assert produced.returncode == 0, produced.stderr
    summary = json.loads(
        [line for line in produced.stdout.splitlines() if line.startswith("{")][-1]
    )
    assert (summary["published"], summary["rejected"]) == (1, 1), summary

    # The walk covers what the defect was about: checkpoints, source.txt, rejects, service
    # logs, Kafka segments, PostgreSQL's cluster, the passwords, pid files.
    names = {path.relative_to(home).as_posix() for path in home.rglob("*")}
    for pattern in (r"producers/.*/checkpoint\.sqlite3", r"producers/.*/source\.txt",
                    r"producers/.*/rejects-.*\.jsonl", r"logs/(kafka|registry|postgres)\.log",
                    r"kafka/data/tip\..*/0+\.log", r"postgres/data/PG_VERSION",
                    r"secrets/pgpass", r"run/kafka\.pid", r"tipsync-state\.json",
                    r"kafka/server\.properties", r"secrets/clients/admin\.properties",
                    r"secrets/agencies/police-ctu\.properties"):
        assert any(re.fullmatch(pattern, name) for name in names), pattern
    assert exposed_to_others(home) == []
    if RUNNING_AS_ROOT:
        data = home / "postgres" / "data"
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert pwd.getpwuid(data.stat().st_uid).pw_name == "postgres"
        # An unprivileged user may pass through the state folder but read nothing in it.
        rejects = next(home.glob("producers/*/*/*/rejects-*.jsonl"))
        for probe in (["ls", str(home)], ["cat", str(rejects)],
                      ["cat", str(home / "logs" / "kafka.log")]):
            denied = subprocess.run(probe, user="nobody", capture_output=True)
            assert denied.returncode != 0, probe


def test_reset_then_up_starts_afresh(own_stack: dict[str, str]) -> None:
    home = Path(own_stack["TIPSYNC_HOME"])
    reset = tipsync(own_stack, "stack", "reset", "--yes")
    assert reset.returncode == 0, reset.stderr
    assert not (home / "kafka").exists() and (home / "tipsync-state.json").is_file()
    up = tipsync(own_stack, "stack", "up")
    assert up.returncode == 0, up.stderr
    assert "started postgres, kafka, registry" in up.stdout
    status = tipsync(own_stack, "stack", "status", "--json")
    assert status.returncode == 0, status.stdout
    assert exposed_to_others(home) == []
