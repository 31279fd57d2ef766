"""One Kafka client properties file drives every process of the pipeline (the real stack).

A SASL_SSL file naming the stack's broker and registry (the admin's credentials) is given to
``tipsync produce`` and ``tipsync sink`` by ``--client-config`` and to ``tipsync stream`` by
the variable, while the two connection variables point at a closed port: a record that
reaches PostgreSQL went through the file's settings in every process.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from deploy.bench.scratch import scratch_database
from deploy.bench.stream_harness import StreamHarness
from producers.canonical import Entity, columns_of
from schemas import config
from schemas.config import Settings
from schemas.topics import TopicSpec, create_topics
from sinks.migrate import migrate
from sinks.roles import SINK_ROLE, conninfo_as

AGENCY = "police-ctu"
NOWHERE_KAFKA = "127.0.0.1:9"  # nothing listens: only the file can lead to the broker
NOWHERE_REGISTRY = "https://127.0.0.1:9/apis/ccompat/v7"
TIMEOUT_SECONDS = 120


@pytest.fixture
def harness(stack: Settings) -> Iterator[StreamHarness]:
    harness = StreamHarness(stack, agencies=[AGENCY], entities=["person", "link"]).setup()
    create_topics(stack.client, [TopicSpec(harness.topics.dlq("sink"), 1, 1)])
    try:
        yield harness
    finally:
        harness.teardown()


def properties_file(folder: Path, settings: Settings) -> Path:
    """The local stack's admin file (bootstrap, SASL_SSL, CA, registry), as a production
    file would name a cluster, plus a key librdkafka takes as it is."""
    admin_file = config.local_client_file(settings.home, config.DEFAULT_PRINCIPAL)
    path = folder / "client.properties"
    path.touch(mode=0o600)
    path.write_text(
        admin_file.read_text(encoding="utf-8") + "client.id=tipsync-clientcfg-test\n",
        encoding="utf-8",
    )
    return path


def environment(home: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ, config.HOME: str(home), config.KAFKA_BOOTSTRAP: NOWHERE_KAFKA,
        config.REGISTRY_URL: NOWHERE_REGISTRY, config.CLIENT_CONFIG: "", **extra,
    }


def test_a_record_moves_end_to_end_with_the_properties_file(
    harness: StreamHarness, stack: Settings, tmp_path: Path
) -> None:
    client_file = properties_file(tmp_path, stack)
    record_id = f"CC-{uuid.uuid4().hex[:8]}"
    export = tmp_path / "people.csv"
    with export.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(columns_of(Entity.PERSON)))
        writer.writeheader()
        row = dict.fromkeys(columns_of(Entity.PERSON), "")
        row.update(source_record_id=record_id, given_name="Clio", family_name="Configson",
                   date_of_birth="1984-07-09", sex="F", updated_at="2024-05-01T10:00:00Z")
        writer.writerow(row)

    # the producer: --client-config
    produced = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "produce", "--agency", AGENCY, "--entity",
         "person", "--file", str(export), "--topic-root", harness.prefix, "--no-progress",
         "--client-config", str(client_file)],
        capture_output=True, text=True, timeout=300, env=environment(tmp_path / "home"),
    )
    assert produced.returncode == 0, produced.stderr
    assert json.loads(produced.stdout.splitlines()[-1])["published"] == 1

    # the stream worker: the variable
    harness.start_worker(environment={
        config.KAFKA_BOOTSTRAP: NOWHERE_KAFKA, config.REGISTRY_URL: NOWHERE_REGISTRY,
        config.CLIENT_CONFIG: str(client_file),
    })
    harness.wait_for(
        lambda: any(value for value in harness.latest(harness.topics.reconciled("person"))
                    .values()),
        timeout=TIMEOUT_SECONDS, what="the golden person",
    )

    # the sink: --client-config; as its own role, on a store its owner migrated
    with scratch_database(stack.database_url, "test_clientcfg") as database_url:
        migrate(database_url)
        log = (tmp_path / "sink.log").open("w")
        sink = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "sink", "--topic-root", harness.prefix,
             "--database-url", conninfo_as(database_url, SINK_ROLE), "--metrics-port", "0",
             "--batch-seconds", "0.2", "--client-config", str(client_file)],
            stdout=log, stderr=subprocess.STDOUT, env=environment(tmp_path / "home"),
        )
        try:
            stored = _wait_for_source(database_url, record_id, sink)
        finally:
            sink.send_signal(signal.SIGTERM)
            sink.wait(timeout=60)
            log.close()
        assert stored == [(AGENCY, record_id)], (tmp_path / "sink.log").read_text()


def _wait_for_source(
    database_url: str, record_id: str, sink: subprocess.Popen[bytes]
) -> list[tuple[str, str]]:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        assert sink.poll() is None, f"the sink exited with {sink.returncode}"
        try:
            with psycopg.connect(database_url) as connection:
                rows = connection.execute(
                    "select agency_id, source_record_id from reconciled.person_source"
                    " where source_record_id = %s", (record_id,),
                ).fetchall()
        except psycopg.errors.UndefinedTable:
            rows = []  # the sink has not migrated the scratch database yet
        if rows:
            return [(str(agency), str(source)) for agency, source in rows]
        time.sleep(1)
    return []


def test_a_bad_file_stops_a_command_before_it_connects(tmp_path: Path) -> None:
    secret = "do-not-show-me"  # noqa: S105 - a test value
    bad = tmp_path / "client.properties"
    bad.write_text(f"security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=u\n"
                   f"sasl.password={secret}\n", encoding="utf-8")
    bad.chmod(0o644)
    result = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "lag", "--client-config", str(bad)],
        capture_output=True, text=True, timeout=120, env=environment(tmp_path / "home"),
    )
    assert result.returncode == 2
    assert str(bad) in result.stderr and "chmod 600" in result.stderr
    assert secret not in result.stderr + result.stdout
