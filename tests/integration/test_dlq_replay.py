"""``tipsync dlq`` on the real stack: an event becomes a dead letter, the operator lists and
shows it (no personal data), fixes the cause, replays it into the store, replays it again
(no duplicate), and the audit says who did what; the operator principal reads dead letters
and writes stage inputs, and nothing else (checked with Kafka's console tools).

The cause is a bug in ingest: the worker runs the ordinary ``tipsync stream`` CLI through this
file (``__main__`` below), which makes ingest raise for one chosen case, with a message
quoting the case as a real bug's message might. "Fixing the code" is restarting the worker
without it. All data here is invented.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka.admin import NewTopic

# a plain import: this file is also the worker's script (its folder first on sys.path),
# run where the repository's root is not importable as `tests`
from kafka_tools import java_client_config, kafka_tool

from deploy.bench.scratch import scratch_database
from deploy.bench.stream_harness import StreamHarness
from deploy.stack.acls import KafkaAccess, service_grants
from deploy.stack.principals import OPERATOR
from schemas import config
from schemas.config import Settings
from schemas.examples import example_event, example_reconciled, example_uuid
from schemas.registration import register_all
from schemas.serde import AvroSerializer
from schemas.topics import DLQ_STAGES, TopicNames
from sinks.migrate import migrate
from streams.ingest import entity_golden_id

POLICE = "police-ctu"
FAILING = "C-DLQ-FAIL"
# what the failing case says, and what the bug's message quotes: never in the tools' output
SECRET_TITLE = "Case of Odessa Inventa"
FAILING_RECORD_VARIABLE = "DLQ_TEST_FAILING_RECORD"  # read by this file's worker only
TIMEOUT_SECONDS = 120


def _install_fault() -> None:
    import streams.ingest_handler

    golden_entity = streams.ingest_handler.golden_entity
    failing = os.environ[FAILING_RECORD_VARIABLE]

    def failing_golden_entity(event: Any) -> Any:
        if event.source_record_id == failing:
            raise ValueError(f"cannot file {SECRET_TITLE}")
        return golden_entity(event)

    streams.ingest_handler.golden_entity = failing_golden_entity  # type: ignore[assignment]


def _case(record: str, title: str) -> dict[str, Any]:
    event = example_event("case", POLICE, record, event_id=example_uuid(f"dlq:{record}"))
    event["payload"]["title"] = title
    return event


@dataclass
class Pipeline:
    stack: Settings
    harness: StreamHarness
    database_url: str

    def tipsync(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """``tipsync dlq ...`` as the operator types it: with the operator principal's own
        file (granted for this root as ``stack up`` grants it for tip)."""
        environment = {**os.environ, config.CLIENT_CONFIG: ""}
        return subprocess.run(
            [sys.executable, "-m", "deploy.cli", "dlq", *arguments, "--topic-root",
             self.harness.prefix, *(("--database-url", self.database_url)
                                    if arguments[0] != "list" else ())],
            capture_output=True, text=True, timeout=300, env=environment,
        )

    def stored_versions(self, record: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as connection:
            return connection.execute(
                "SELECT source_version FROM reconciled.case_source"
                " WHERE agency_id = %s AND source_record_id = %s", (POLICE, record),
            ).fetchall()

    def golden_version(self, entity: str, golden_id: str) -> int | None:
        with psycopg.connect(self.database_url) as connection:
            row = connection.execute(
                "SELECT golden_version FROM reconciled.golden_record_state"
                " WHERE entity = %s AND golden_id = %s", (entity, golden_id)).fetchone()
        return int(row[0]) if row else None

    def golden_rows(self, golden_id: str) -> int:
        with psycopg.connect(self.database_url) as connection:
            row = connection.execute('SELECT count(*) FROM reconciled."case" WHERE case_id = %s',
                                     (golden_id,)).fetchone()
        return int(row[0]) if row else 0

    def sink_positions(self, topic: str) -> dict[int, int]:
        with psycopg.connect(self.database_url) as connection:
            rows = connection.execute(
                "SELECT partition, next_offset FROM reconciled.sink_offsets WHERE topic = %s",
                (topic,)).fetchall()
        return {int(partition): int(offset) for partition, offset in rows}

    def wait_for(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} within {TIMEOUT_SECONDS} s; worker log:\n"
                                   + self.harness.worker_log()[-3000:])
            time.sleep(0.5)


@pytest.fixture(scope="module")
def pipeline(stack: Settings) -> Iterator[Pipeline]:
    harness = StreamHarness(stack, agencies=(POLICE,), entities=("case",), partitions=2)
    register_all(harness.registry)
    names = harness.topics
    try:
        with scratch_database(stack.database_url, "dlq") as database_url:
            migrate(database_url)
            harness.create_agency_topics((POLICE,), ("case",))
            for future in harness.admin.create_topics(
                [NewTopic(names.dlq(stage), 2, 1) for stage in DLQ_STAGES]
                + [NewTopic(names.resolve, 1, 1)], operation_timeout=30,
            ).values():
                future.result()
            KafkaAccess(stack.client).grant(service_grants(names, (POLICE,)))
            pipeline = Pipeline(stack, harness, database_url)
            harness.start_worker(command=[__file__],
                                 environment={FAILING_RECORD_VARIABLE: FAILING})
            outputs = {names.reconciled("case"), names.reconciled("person")}
            pipeline.wait_for(  # the worker creates them, with its partition count
                lambda: outputs <= set(harness.admin.list_topics(timeout=10).topics),
                "the worker's output topics")
            sink = subprocess.Popen(
                [sys.executable, "-m", "deploy.cli", "sink", "--topic-root", names.root,
                 "--database-url", database_url, "--metrics-port", "0",
                 "--batch-seconds", "0.3"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                yield pipeline
            finally:
                sink.terminate()
                sink.wait(60)
    finally:
        harness.teardown()


def test_a_dead_letter_is_listed_fixed_replayed_into_the_store_once_and_audited(
    pipeline: Pipeline,
) -> None:
    harness = pipeline.harness
    harness.publish("case", _case("C-DLQ-OK", "An ordinary case"))
    harness.publish("case", _case(FAILING, SECRET_TITLE))
    harness.flush()
    pipeline.wait_for(lambda: bool(pipeline.stored_versions("C-DLQ-OK")), "the good case stored")
    pipeline.wait_for(lambda: bool(harness.read(harness.topics.dlq("ingest"))),
                      "the failing case's dead letter")
    assert not pipeline.stored_versions(FAILING)

    # list and show, as the operator: the reason and where it came from, no personal data
    listed = pipeline.tipsync("list", "--json")
    assert listed.returncode == 0, listed.stderr
    [letter] = json.loads(listed.stdout)
    assert letter["stage"] == "ingest" and letter["reason"] == "processing_error"
    assert letter["source_topic"] == harness.topics.agency(POLICE, "case")
    assert letter["id"].startswith("ingest:")
    shown = pipeline.tipsync("show", letter["id"])
    assert shown.returncode == 0, shown.stderr
    assert "processing_error" in shown.stdout and "ValueError" in shown.stdout
    for output in (listed.stdout + listed.stderr, shown.stdout + shown.stderr):
        assert SECRET_TITLE not in output and FAILING not in output

    # the payload is for the admin only (its own file: on this machine, the admin's local
    # one), and recorded first; the operator's credentials are refused
    operator_file = config.local_client_file(pipeline.stack.home, OPERATOR)
    refused = pipeline.tipsync("show", letter["id"], "--payload",
                               "--client-config", str(operator_file))
    assert refused.returncode == 2 and "admin principal only" in refused.stderr
    assert SECRET_TITLE not in refused.stdout + refused.stderr
    cleared = pipeline.tipsync("show", letter["id"], "--payload", "--json")
    assert cleared.returncode == 0, cleared.stderr
    assert json.loads(cleared.stdout)["payload"]["value"]["payload"]["title"] == SECRET_TITLE

    # a dry run publishes nothing
    dry = pipeline.tipsync("replay", "--stage", "ingest", "--dry-run")
    assert dry.returncode == 0 and f"would replay {letter['id']}" in dry.stdout
    time.sleep(3)
    assert not pipeline.stored_versions(FAILING)

    # fix the code: the worker restarts without the bug; then replay
    harness.stop_worker(harness.workers[0])
    harness.start_worker()
    replayed = pipeline.tipsync("replay", "--stage", "ingest")
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 dead letter(s)" in replayed.stdout
    pipeline.wait_for(lambda: bool(pipeline.stored_versions(FAILING)), "the replayed case stored")
    golden = entity_golden_id("case", POLICE, FAILING)
    assert golden in harness.latest(harness.topics.reconciled("case"))

    # a second replay leaves it (the audit has it); forced, idempotence keeps the store whole
    again = pipeline.tipsync("replay", "--stage", "ingest")
    assert again.returncode == 0 and "replayed 0 dead letter(s)" in again.stdout
    forced = pipeline.tipsync("replay", "--stage", "ingest", "--again")
    assert forced.returncode == 0 and "replayed 1 dead letter(s)" in forced.stdout
    agency_topic = harness.topics.agency(POLICE, "case")
    key = f"{POLICE}:{FAILING}".encode()
    pipeline.wait_for(
        lambda: sum(message.key == key for message in harness.read(agency_topic)) == 3,
        "the forced replay on the agency topic")
    pipeline.wait_for(harness.caught_up, "the worker caught up after the forced replay")
    reconciled = harness.read(harness.topics.reconciled("case"))
    outputs = [message for message in reconciled if message.key == golden.encode()]
    # ingest forwards the latest accepted event of a record again when it comes back (its
    # at-least-once rule): the same golden record, never another version...
    assert len({message.value for message in outputs}) == 1
    # ...and the sink, which keeps the highest golden_version, changes nothing
    ends = {message.partition: message.offset + 1 for message in reconciled}
    pipeline.wait_for(lambda: pipeline.sink_positions(harness.topics.reconciled("case")) == ends,
                      "the sink at the end of the reconciled topic")
    assert pipeline.stored_versions(FAILING) == [(3,)]  # one row, the event's version
    assert pipeline.golden_rows(golden) == 1

    audit = pipeline.tipsync("audit", "--json")
    assert audit.returncode == 0, audit.stderr
    rows = json.loads(audit.stdout)
    replays = [row for row in rows if row["action"] == "replay"]
    assert [row["dead_letter_id"] for row in replays] == [letter["id"]] * 2
    assert {row["kafka_principal"] for row in replays} == {OPERATOR}
    assert all(row["target_topic"] == agency_topic and row["completed_at"] for row in replays)
    assert [row["kafka_principal"] for row in rows if row["action"] == "payload"] == ["admin"]
    assert SECRET_TITLE not in audit.stdout and FAILING not in audit.stdout


def test_a_sink_letter_older_than_the_stored_record_is_not_replayed(pipeline: Pipeline) -> None:
    harness, topic = pipeline.harness, pipeline.harness.topics.reconciled("person")
    serialize = AvroSerializer(harness.registry, "reconciled.person")
    stored, fresh = str(uuid.uuid4()), str(uuid.uuid4())

    def person(golden_id: str, version: int, **fields: Any) -> bytes:
        record = example_reconciled("person")
        record.update(person_id=golden_id, golden_version=version, **fields)
        return serialize(record)

    harness.publish_raw(topic, stored.encode(), person(stored, 9))
    harness.flush()
    pipeline.wait_for(lambda: pipeline.golden_version("person", stored) == 9, "version 9 stored")
    # the store refuses a date that does not exist: two dead letters of the sink
    harness.publish_raw(topic, stored.encode(), person(stored, 5, date_of_birth="1990-02-31"))
    harness.publish_raw(topic, fresh.encode(), person(fresh, 3, date_of_birth="1990-02-31"))
    harness.flush()
    pipeline.wait_for(lambda: len(harness.read(harness.topics.dlq("sink"))) == 2,
                      "the sink's two dead letters")
    dry = pipeline.tipsync("replay", "--stage", "sink", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "the store holds its golden record at version 9, not older than the letter's 5" \
        in dry.stderr
    assert dry.stdout.count("would replay") == 1 and "dry run: 1 dead letter(s)" in dry.stdout


# --------------------------------------------------------------------------- least privilege

PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"


def test_the_operator_reads_dead_letters_and_writes_stage_inputs_and_nothing_else(
    stack: Settings, tmp_path: Path,
) -> None:
    names = TopicNames(f"dlqsec{uuid.uuid4().hex[:8]}")
    topics = [names.agency(POLICE, "case"), names.dlq("ingest"), names.outbound(POLICE),
              names.reconciled("case"), names.internal("person-mapping")]
    harness = StreamHarness(stack, prefix=names.root)
    for future in harness.admin.create_topics([NewTopic(t, 1, 1) for t in topics]).values():
        future.result()
    try:
        KafkaAccess(stack.client).grant(service_grants(names, (POLICE,)))
        operator = java_client_config(config.local_client_file(stack.home, OPERATOR),
                                      tmp_path / "java")

        def produce(topic: str) -> str:
            done = kafka_tool(
                stack, PRODUCER, "--bootstrap-server", stack.kafka_bootstrap, "--topic", topic,
                "--producer.config", str(operator), "--property", "parse.key=true",
                "--property", "key.separator=:",
                "--producer-property", "max.block.ms=15000",
                "--producer-property", "delivery.timeout.ms=20000",
                "--producer-property", "request.timeout.ms=10000",
                stdin="k:a-synthetic-value\n",
            )
            return done.stdout + done.stderr

        def consume(topic: str) -> str:
            done = kafka_tool(
                stack, CONSUMER, "--bootstrap-server", stack.kafka_bootstrap, "--topic", topic,
                "--partition", "0", "--offset", "earliest", "--max-messages", "1",
                "--timeout-ms", "15000", "--consumer.config", str(operator),
            )
            return done.stdout + done.stderr

        # allowed: write a stage input, read a dead-letter topic
        assert "Exception" not in produce(names.agency(POLICE, "case"))
        assert harness.count(names.agency(POLICE, "case")) == 1
        harness.publish_raw(names.dlq("ingest"), b"k", b"a-dead-letter")
        harness.flush()
        assert "a-dead-letter" in consume(names.dlq("ingest"))
        # refused: writing a dead-letter topic, an agency's feed or an internal topic
        for topic in (names.dlq("ingest"), names.outbound(POLICE),
                      names.internal("person-mapping")):
            assert "TopicAuthorizationException" in produce(topic), topic
        assert harness.count(names.dlq("ingest")) == 1
        # refused: reading an agency topic, a reconciled topic or an agency's feed
        for topic in (names.agency(POLICE, "case"), names.reconciled("case"),
                      names.outbound(POLICE)):
            assert "TopicAuthorizationException" in consume(topic), topic
    finally:
        for future in harness.admin.delete_topics(topics, operation_timeout=30).values():
            future.result()


if __name__ == "__main__":  # the failing worker process of this module's fixture
    from deploy.cli import main

    _install_fault()
    sys.exit(main(sys.argv[1:]))
