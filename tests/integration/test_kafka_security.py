"""The broker's security, checked with Kafka's own console tools (not tipsync's code).

Each test works under a topic root of its own; agencies are enrolled for it by the real
``tipsync agency enroll`` and connect with the file it hands over, turned into the Java
clients' keys (``kafka_tools.java_client_config``). Every refusal is checked twice: the
tool's own error, and (for writes) the topic's end offset, which must not move. (The console
tools exit 0 after a failed send or a refused read: only their output tells.)
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from deploy.bench.scratch import scratch_database
from deploy.bench.stream_harness import StreamHarness
from deploy.stack.acls import KafkaAccess, service_grants
from producers.canonical import Entity, columns_of
from schemas import config
from schemas.config import Settings
from schemas.topics import TopicNames
from sinks.migrate import migrate
from sinks.roles import SINK_ROLE, conninfo_as
from tests.integration.kafka_tools import java_client_config, kafka_tool

PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
AGENCY = "police-ctu"
OTHER = "immigration"
REVOKED = "prosecutions"
AUTHENTICATION_FAILED = "Authentication failed"
# what a client that cannot even authenticate ends with: no metadata, so no send
NO_CONNECTION = "TimeoutException"
TIMEOUT_SECONDS = 120


@dataclass
class Broker:
    settings: Settings
    names: TopicNames
    folder: Path
    admin: AdminClient

    def end_offset(self, topic: str) -> int:
        consumer = Consumer(self.settings.client.librdkafka({"group.id": "unused"}))
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            return sum(consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                      timeout=10)[1]
                       for partition in partitions)
        finally:
            consumer.close()

    def produce(self, java_config: Path, topic: str) -> subprocess.CompletedProcess[str]:
        """One record by Kafka's console producer; a refused send fails within seconds."""
        return kafka_tool(
            self.settings, PRODUCER, "--bootstrap-server", self.settings.kafka_bootstrap,
            "--topic", topic, "--producer.config", str(java_config),
            "--producer-property", "max.block.ms=15000",
            "--producer-property", "delivery.timeout.ms=20000",
            "--producer-property", "request.timeout.ms=10000",
            stdin="a-synthetic-value\n",
        )

    def consume(
        self, java_config: Path, topic: str, group: str
    ) -> subprocess.CompletedProcess[str]:
        """Reads one record, or ends at the broker's refusal. The idle timeout is generous:
        the refusal comes only after the group is joined, which took over 15 s at load
        average 25 (the tool then ended with a bare TimeoutException); a consumer that reads
        or is refused ends long before it."""
        return kafka_tool(
            self.settings, CONSUMER, "--bootstrap-server", self.settings.kafka_bootstrap,
            "--topic", topic, "--group", group, "--from-beginning", "--max-messages", "1",
            "--timeout-ms", "60000", "--consumer.config", str(java_config),
        )

    def java(self, client_file: Path, **overrides: str) -> Path:
        return java_client_config(client_file, self.folder, **overrides)


@contextmanager
def broker_with_topics(
    stack: Settings, folder: Path, prefix: str, topics_of: Callable[[TopicNames], list[str]]
) -> Iterator[Broker]:
    """A topic root of its own (``prefix`` + random), with ``topics_of(names)`` made for the
    test (one partition each) and deleted after it."""
    names = TopicNames(f"{prefix}{uuid.uuid4().hex[:10]}")
    admin = AdminClient(stack.client.librdkafka())
    topics = topics_of(names)
    for future in admin.create_topics([NewTopic(topic, 1, 1) for topic in topics]).values():
        future.result()
    try:
        yield Broker(stack, names, folder, admin)
    finally:
        for future in admin.delete_topics(topics, operation_timeout=30).values():
            future.result()


@pytest.fixture
def broker(stack: Settings, tmp_path: Path) -> Iterator[Broker]:
    with broker_with_topics(stack, tmp_path / "java", "sec", lambda names: [
        names.agency(AGENCY, "person"), names.agency(OTHER, "person"),
        names.agency(REVOKED, "person"), names.reconciled("person"),
        names.internal("resolve"), names.dlq("ingest"), names.outbound(AGENCY),
    ]) as found:
        yield found


def test_a_client_without_credentials_is_refused(broker: Broker, enroll_agency) -> None:
    own = enroll_agency(AGENCY, broker.names.root)
    topic = broker.names.agency(AGENCY, "person")
    tls_only = broker.java(own, security_protocol="SSL")  # TLS, but no SASL handshake
    refused = broker.produce(tls_only, topic)
    assert NO_CONNECTION in refused.stdout + refused.stderr
    assert broker.end_offset(topic) == 0


def test_a_wrong_password_is_refused(broker: Broker, enroll_agency) -> None:
    own = enroll_agency(AGENCY, broker.names.root)
    topic = broker.names.agency(AGENCY, "person")
    refused = broker.produce(broker.java(own, password="not-the-secret"), topic)
    assert AUTHENTICATION_FAILED in refused.stderr + refused.stdout
    assert broker.end_offset(topic) == 0


def test_a_plaintext_connection_is_refused(broker: Broker, enroll_agency) -> None:
    own = enroll_agency(AGENCY, broker.names.root)
    topic = broker.names.agency(AGENCY, "person")
    refused = broker.produce(broker.java(own, security_protocol="SASL_PLAINTEXT"), topic)
    assert NO_CONNECTION in refused.stdout + refused.stderr
    assert broker.end_offset(topic) == 0


def test_an_agency_writes_its_own_topic_and_no_other(broker: Broker, enroll_agency) -> None:
    own = broker.java(enroll_agency(AGENCY, broker.names.root))
    enroll_agency(OTHER, broker.names.root)
    mine, theirs = broker.names.agency(AGENCY, "person"), broker.names.agency(OTHER, "person")
    broker.produce(own, mine)
    assert broker.end_offset(mine) == 1
    refused = broker.produce(own, theirs)
    assert "TopicAuthorizationException" in refused.stderr + refused.stdout
    assert broker.end_offset(theirs) == 0


@pytest.mark.parametrize("kind", ["reconciled", "internal", "dead-letter", "own topic"])
def test_an_agency_reads_nothing_but_its_feed(
    broker: Broker, enroll_agency, kind: str
) -> None:
    own = broker.java(enroll_agency(AGENCY, broker.names.root))
    topic = {
        "reconciled": broker.names.reconciled("person"),
        "internal": broker.names.internal("resolve"),
        "dead-letter": broker.names.dlq("ingest"),
        "own topic": broker.names.agency(AGENCY, "person"),  # write-only, even its own
    }[kind]
    group = broker.names.outbound_group_prefix(AGENCY) + "reader"  # a group it may use
    refused = broker.consume(own, topic, group)
    assert "TopicAuthorizationException" in refused.stderr + refused.stdout
    assert "Processed a total of 0 messages" in refused.stderr + refused.stdout


def test_an_agency_reads_its_own_feed(broker: Broker, enroll_agency) -> None:
    own = broker.java(enroll_agency(AGENCY, broker.names.root))
    feed = broker.names.outbound(AGENCY)
    assert broker.settings.client.source is not None
    broker.produce(broker.java(broker.settings.client.source), feed)  # the admin writes it
    assert broker.end_offset(feed) == 1
    read = broker.consume(own, feed, broker.names.outbound_group_prefix(AGENCY) + "reader")
    assert "a-synthetic-value" in read.stdout, read.stderr


def test_an_agency_cannot_create_a_topic_even_under_its_prefix(
    broker: Broker, enroll_agency
) -> None:
    own = broker.java(enroll_agency(AGENCY, broker.names.root))
    topic = broker.names.agency(AGENCY, "case")
    refused = kafka_tool(
        broker.settings, TOPIC_COMMAND, "--bootstrap-server", broker.settings.kafka_bootstrap,
        "--command-config", str(own), "--create", "--topic", topic, "--partitions", "1",
        "--replication-factor", "1",
    )
    assert refused.returncode != 0
    assert "TopicAuthorizationException" in refused.stderr + refused.stdout
    assert topic not in broker.admin.list_topics(timeout=10).topics


def test_a_revoked_agency_is_refused_on_its_next_connection(
    broker: Broker, enroll_agency
) -> None:
    issued = enroll_agency(REVOKED, broker.names.root)
    java = broker.java(issued)
    topic = broker.names.agency(REVOKED, "person")
    broker.produce(java, topic)
    assert broker.end_offset(topic) == 1
    revoked = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "agency", "revoke", REVOKED],
        capture_output=True, text=True, timeout=120,
    )
    assert revoked.returncode == 0, revoked.stderr
    refused = broker.produce(java, topic)
    assert AUTHENTICATION_FAILED in refused.stderr + refused.stdout
    assert broker.end_offset(topic) == 1
    listed = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "agency", "list", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert "agency-" + REVOKED not in json.loads(listed.stdout)


# --------------------------------------------------------------------------- the good path


def test_an_enrolled_agencys_record_reaches_the_store_through_least_privileged_services(
    stack: Settings, enroll_agency: Callable[[str, str], Path], tmp_path: Path
) -> None:
    """The agency publishes with its handed-over file; stream and sink run with their own
    principals' files (no admin), granted for this root as ``stack up`` grants them for tip."""
    harness = StreamHarness(stack, agencies=[AGENCY], entities=["person", "link"]).setup()
    try:
        names = harness.topics
        KafkaAccess(stack.client).grant(service_grants(names, [AGENCY]))
        harness.admin.create_topics([NewTopic(names.dlq("sink"), 1, 1)])[names.dlq("sink")] \
            .result()
        agency_file = enroll_agency(AGENCY, names.root)
        own_principals = {**os.environ, config.CLIENT_CONFIG: ""}
        record_id = f"SEC-{uuid.uuid4().hex[:8]}"
        export = tmp_path / "people.csv"
        with export.open("w", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(columns_of(Entity.PERSON)))
            writer.writeheader()
            row = dict.fromkeys(columns_of(Entity.PERSON), "")
            row.update(source_record_id=record_id, given_name="Sela", family_name="Securis",
                       date_of_birth="1979-03-02", sex="F", updated_at="2024-05-01T10:00:00Z")
            writer.writerow(row)
        produced = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "produce", "--agency", AGENCY, "--entity",
             "person", "--file", str(export), "--topic-root", names.root, "--no-progress",
             "--client-config", str(agency_file)],
            capture_output=True, text=True, timeout=300,
            env={**own_principals, config.HOME: str(tmp_path / "home")},
        )
        assert produced.returncode == 0, produced.stderr
        assert json.loads(produced.stdout.splitlines()[-1])["published"] == 1
        harness.start_worker(environment={config.CLIENT_CONFIG: ""})
        with scratch_database(stack.database_url, "test_kafkasec") as database_url:
            migrate(database_url)  # the owner's step; the sink (its own role) only checks it
            log = (tmp_path / "sink.log").open("w")
            sink = subprocess.Popen(
                [sys.executable, "-m", "deploy.cli", "sink", "--topic-root", names.root,
                 "--database-url", conninfo_as(database_url, SINK_ROLE), "--metrics-port", "0",
                 "--batch-seconds", "0.2"],
                stdout=log, stderr=subprocess.STDOUT, env=own_principals,
            )
            try:
                stored = _wait_for_person(database_url, record_id, sink)
            finally:
                sink.send_signal(signal.SIGTERM)
                sink.wait(timeout=60)
                log.close()
            assert stored == [(AGENCY, record_id)], (tmp_path / "sink.log").read_text()
    finally:
        harness.teardown()


def _wait_for_person(
    database_url: str, record_id: str, sink: subprocess.Popen[bytes]
) -> list[tuple[str, str]]:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        assert sink.poll() is None, f"the sink exited with {sink.returncode}"
        try:
            with psycopg.connect(database_url) as connection:
                rows = connection.execute(
                    "select s.agency_id, s.source_record_id from reconciled.person_source s"
                    " join reconciled.person p using (person_id)"
                    " where s.source_record_id = %s", (record_id,),
                ).fetchall()
        except psycopg.errors.UndefinedTable:
            rows = []  # the sink has not migrated the scratch database yet
        if rows:
            return [(str(agency), str(source)) for agency, source in rows]
        time.sleep(1)
    return []
