"""tipsync produce on a PostgreSQL source table: incremental by watermark across restarts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from producers.checkpoint import source_folder
from schemas.config import Settings
from schemas.registration import register_all
from schemas.registry import SchemaRegistry
from schemas.serde import AvroDeserializer
from schemas.topics import TopicNames

AGENCY = "immigration"


@pytest.fixture
def source(settings: Settings, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A private schema with an agency-shaped table, and private topics."""
    suffix = uuid.uuid4().hex[:10]
    schema = f"test_produce_{suffix}"
    prefix = f"test-{suffix}"
    with SchemaRegistry(settings.client.registry()) as registry:
        register_all(registry)
    admin = AdminClient(settings.client.librdkafka())
    topics = [TopicNames(prefix).agency(AGENCY, entity) for entity in ("person", "link")]
    for future in admin.create_topics(
        [NewTopic(name, num_partitions=2, replication_factor=1) for name in topics]
    ).values():
        future.result(timeout=30)
    while not set(topics) <= set(admin.list_topics(timeout=10).topics):
        time.sleep(0.2)
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
        connection.execute(
            f"CREATE TABLE {schema}.traveller (id integer PRIMARY KEY, given_name text, "
            "family_name text, date_of_birth date, passport_number text, "
            "passport_country text, updated_at timestamptz NOT NULL, deleted boolean, "
            "internal_note text)"
        )
        yield {"connection": connection, "table": f"{schema}.traveller", "prefix": prefix,
               "home": tmp_path / "home", "topic": topics[0]}
        connection.execute(f"DROP SCHEMA {schema} CASCADE")
    admin.delete_topics(topics)


def produce(settings: Settings, source: dict[str, Any], *extra: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "produce", "--agency", AGENCY, "--entity", "person",
         "--sql", settings.database_url, "--table", source["table"], "--primary-key", "id",
         "--topic-root", source["prefix"], "--no-progress", *extra],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "TIPSYNC_HOME": str(source["home"])},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def events(settings: Settings, topic: str) -> list[dict[str, Any]]:
    deserialize = AvroDeserializer(SchemaRegistry(settings.client.registry()))
    consumer = Consumer(settings.client.librdkafka(
        {"group.id": f"{topic}.reader", "enable.auto.commit": False}
    ))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    wanted, assignments = 0, []
    for partition in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        wanted += high - low
        assignments.append(TopicPartition(topic, partition, low))
    consumer.assign(assignments)
    found: list[dict[str, Any]] = []
    while len(found) < wanted:
        message = consumer.poll(10)
        assert message is not None and message.error() is None
        found.append(deserialize(message.value(), expected="person").record)
    consumer.close()
    return found


def insert(source: dict[str, Any], *rows: tuple[Any, ...]) -> None:
    source["connection"].cursor().executemany(
        f"INSERT INTO {source['table']} (id, given_name, family_name, date_of_birth, "
        "passport_number, passport_country, updated_at, deleted) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, false)",
        rows,
    )


def test_a_table_is_published_incrementally_and_resumes_after_a_restart(
    settings: Settings, source: dict[str, Any]
) -> None:
    same_instant = "2024-05-01T10:00:00.123456+00"
    insert(
        source,
        (1, "Ann", "Brown", "1990-05-17", "a1234567", "JM", same_instant),
        (2, "Kemar", "Reid", None, None, None, same_instant),
        (3, "Omar", "Clarke", None, "x99999", "US", "2024-05-01T09:00:00+00"),
    )
    first = produce(settings, source)
    assert (first["read"], first["published"], first["rejected"]) == (3, 3, 0)

    # After the restart: a new row tied with the watermark, an edit, a soft delete.
    insert(source, (4, "Devon", "Grant", None, None, None, same_instant))
    source["connection"].execute(
        f"UPDATE {source['table']} SET family_name = 'Brown-Reid', "
        "updated_at = '2024-06-01T10:00:00+00' WHERE id = 1"
    )
    source["connection"].execute(
        f"UPDATE {source['table']} SET deleted = true, updated_at = '2024-06-02T10:00:00+00' "
        "WHERE id = 3"
    )
    second = produce(settings, source)
    assert (second["read"], second["published"], second["deleted"]) == (3, 3, 1)
    assert produce(settings, source)["read"] == 0  # nothing new: nothing read again

    # A row removed outright is found by the full comparison.
    source["connection"].execute(f"DELETE FROM {source['table']} WHERE id = 2")
    third = produce(settings, source, "--full-compare-every", "1")
    assert (third["published"], third["deleted"]) == (1, 1)

    published = [(event["source_record_id"], event["op"]) for event in events(
        settings, source["topic"])]
    assert sorted(published) == sorted([
        ("1", "UPSERT"), ("2", "UPSERT"), ("3", "UPSERT"),
        ("4", "UPSERT"), ("1", "UPSERT"), ("3", "DELETE"), ("2", "DELETE"),
    ])
    latest = {event["source_record_id"]: event for event in events(settings, source["topic"])}
    assert latest["1"]["payload"]["family_name"] == "Brown-Reid"
    assert latest["1"]["payload"]["identifiers"] == [
        {"scheme": "PASSPORT", "value": "A1234567", "issuing_country": "JM"}
    ]


def test_a_full_comparison_deletes_only_the_records_that_left_the_table(
    settings: Settings, source: dict[str, Any]
) -> None:
    schema = source["table"].split(".")[0]
    connection = source["connection"]
    # A text key that the producer tidies ("A  2" is published as "A 2"), and a table whose
    # source_record_id column is not its primary key.
    connection.execute(
        f"CREATE TABLE {schema}.agent (ref text PRIMARY KEY, given_name text, "
        "family_name text, updated_at timestamptz NOT NULL)"
    )
    connection.execute(
        f"INSERT INTO {schema}.agent VALUES ('A  2', 'Ann', 'Brown', now()), "
        "(' B-1 ', 'Bo', 'Reid', now()), ('C-3', 'Cy', 'Grant', now())"
    )
    connection.execute(
        f"CREATE TABLE {schema}.member (id integer PRIMARY KEY, source_record_id text, "
        "given_name text, family_name text, updated_at timestamptz NOT NULL)"
    )
    connection.execute(
        f"INSERT INTO {schema}.member VALUES (1, 'M-1', 'Di', 'Lee', now()), "
        "(2, 'M-2', 'Ed', 'Hall', now())"
    )
    agent = ("--table", f"{schema}.agent", "--primary-key", "ref", "--full-compare-every", "1")
    member = ("--table", f"{schema}.member", "--primary-key", "id", "--full-compare-every", "1")
    first = produce(settings, source, *agent)
    assert (first["published"], first["deleted"]) == (3, 0)
    first = produce(settings, source, *member)
    assert (first["published"], first["deleted"]) == (2, 0)
    connection.execute(f"DELETE FROM {schema}.agent WHERE ref = 'C-3'")
    again = produce(settings, source, *agent)
    assert (again["published"], again["deleted"]) == (1, 1)  # only C-3 left the table
    assert produce(settings, source, *member)["deleted"] == 0

    published = sorted((event["source_record_id"], event["op"]) for event in events(
        settings, source["topic"]))
    assert published == [("A 2", "UPSERT"), ("B-1", "UPSERT"), ("C-3", "DELETE"),
                         ("C-3", "UPSERT"), ("M-1", "UPSERT"), ("M-2", "UPSERT")]


def test_a_password_in_the_dsn_is_neither_written_nor_shown(
    settings: Settings, source: dict[str, Any]
) -> None:
    canary = "Canary-Pw-7f3"
    table = source["table"]
    # Port 1 refuses at once: the run stops at the connection, after the checkpoint folder
    # was made (where source.txt names the source).
    dsns = {
        f"host=127.0.0.1 port=1 dbname=tipsync password={canary} connect_timeout=5":
            "host=127.0.0.1 port=1 dbname=tipsync connect_timeout=5",
        f"postgresql://tipsync@127.0.0.1:1/tipsync?password={canary}&connect_timeout=5":
            "postgresql://tipsync@127.0.0.1:1/tipsync?connect_timeout=5",
        f"postgresql://tipsync:{canary}@127.0.0.1:1/tipsync":
            "postgresql://tipsync@127.0.0.1:1/tipsync",
        f"host=127.0.0.1 port=1 password=two words{canary}": None,  # cannot be parsed
    }
    home = source["home"]
    for dsn, without in dsns.items():
        result = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "produce", "--agency", AGENCY, "--entity",
             "person", "--sql", dsn, "--table", table, "--primary-key", "id",
             "--topic-root", source["prefix"], "--no-progress"],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "TIPSYNC_HOME": str(home)},
        )
        assert result.returncode == 1, result.stderr
        assert canary not in result.stderr + result.stdout
        assert "--sql" in result.stderr
        for path in home.rglob("*"):
            if path.is_file():
                assert canary.encode() not in path.read_bytes(), (path, path.read_bytes())
        if without is not None:
            # The folder of the same DSN without its password: one checkpoint per database.
            folder = source_folder(home, AGENCY, "person", f"{without} {table}")
            assert (folder / "source.txt").read_text() == f"{without} {table}\n"
