"""The sink end to end on the real stack: Avro events on Kafka -> ``reconciled`` in PostgreSQL.

Every test uses its own topics (a random prefix), consumer group, dead-letter topic and
throwaway database, so parallel runs never meet.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import sinks.consumer as consumer_module
from deploy.bench.scratch import scratch_database
from schemas.config import Settings
from schemas.dead_letters import DEAD_LETTER_HEADERS, read_dead_letter_headers
from schemas.entities import RECONCILED_OUTPUTS
from schemas.examples import example_reconciled
from schemas.registration import register_all
from schemas.serde import AvroSerializer, SchemaRegistry
from schemas.topics import TopicNames, TopicSpec, create_topics
from sinks import store
from sinks.batch import Message, PreparedBatch
from sinks.consumer import ReconciledSink, SinkOptions
from sinks.migrate import migrate
from sinks.roles import SINK_ROLE, conninfo_as
from sinks.writer import SINK_APPLICATION_NAME

PARTITIONS = 2
TIMEOUT_SECONDS = 60


# --- plumbing -------------------------------------------------------------------------------


class Topics:
    """A private copy of the reconciled topics and a dead-letter topic for one test."""

    def __init__(self, settings: Settings) -> None:
        self.root = f"test-sink-{uuid.uuid4().hex[:10]}"
        self.names = TopicNames(self.root)
        self.dead_letters = self.names.dlq("sink")
        self.of = {output: self.names.reconciled(output) for output in RECONCILED_OUTPUTS}
        create_topics(settings.client, [
            TopicSpec(name, PARTITIONS, 1) for name in [*self.of.values(), self.dead_letters]
        ])
        with SchemaRegistry(settings.client.registry()) as registry:
            register_all(registry)
            self.serializers = {
                output: AvroSerializer(registry, "reconciled." + output)
                for output in RECONCILED_OUTPUTS
            }
        self.producer = Producer(settings.client.librdkafka({"enable.idempotence": True}))
        self.settings = settings

    def options(self, group: str, **overrides: Any) -> SinkOptions:
        return SinkOptions.under(self.names, consumer_group=group,
                                 **{"batch_seconds": 0.3, **overrides})

    def publish(self, output: str, key: str | bytes, record: dict[str, Any] | bytes | None) -> None:
        """Publish ``record`` Avro-encoded (bytes as they are); a golden record gets the key
        as its id, as the resolver writes it."""
        value = record if record is None or isinstance(record, bytes) else (
            self.serializers[output](
                record if output == "match_decision" else {**record, f"{output}_id": key}
            )
        )
        self.producer.produce(self.of[output], key=key, value=value)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0

    def end_offsets(self) -> dict[tuple[str, int], int]:
        consumer = Consumer(self.settings.client.librdkafka({"group.id": "watermarks"}))
        try:
            return {
                (topic, partition): consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )[1]
                for topic in self.of.values() for partition in range(PARTITIONS)
            }
        finally:
            consumer.close()

    def dead_letters_received(self, expected: int) -> list[Any]:
        consumer = Consumer(self.settings.client.librdkafka(
            {"group.id": f"dlq-reader-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
        ))
        consumer.subscribe([self.dead_letters])
        received: list[Any] = []
        deadline = time.monotonic() + TIMEOUT_SECONDS
        try:
            while len(received) < expected and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    received.append(message)
        finally:
            consumer.close()
        return received


@pytest.fixture
def topics(stack: Settings) -> Topics:
    return Topics(stack)


@pytest.fixture
def database_url(stack: Settings) -> Iterator[str]:
    with scratch_database(stack.database_url, "test_pipeline") as url:
        migrate(url)
        yield url


def caught_up(database_url: str, group: str, ends: dict[tuple[str, int], int]) -> bool:
    with psycopg.connect(database_url) as connection:
        stored = store.stored_offsets(connection, group, sorted({t for t, _ in ends}))
    return all(stored.get(position, 0) >= end for position, end in ends.items())


def wait_until(condition: Callable[[], bool], what: str, every_seconds: float = 0.2) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {TIMEOUT_SECONDS} s waiting for {what}")
        time.sleep(every_seconds)


def run_sink_until_caught_up(
    topics: Topics, database_url: str, group: str, during: Callable[[], None] | None = None
) -> ReconciledSink:
    """Run the sink, as its own role, in a thread until its stored offsets reach the ends
    of the topics."""
    ends = topics.end_offsets()
    sink = ReconciledSink(topics.settings, topics.options(group),
                          conninfo_as(database_url, SINK_ROLE))
    stop = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            sink.run(stop.is_set)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test thread
            failure.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        if during:
            during()
        wait_until(lambda: failure or caught_up(database_url, group, ends), "the sink")
    finally:
        stop.set()
        thread.join(TIMEOUT_SECONDS)
    if failure:
        raise failure[0]
    return sink


def offsets_stored(database_url: str, topics: Topics, group: str) -> int:
    """The sum of the next offsets the sink of ``group`` has stored."""
    with psycopg.connect(database_url) as connection:
        return sum(store.stored_offsets(connection, group, list(topics.of.values())).values())


def restart_until_caught_up(command: list[str], log: Any, database_url: str, group: str,
                            ends: dict[tuple[str, int], int]) -> None:
    """Start the sink command again, wait until it has caught up, stop it with SIGTERM."""
    restarted = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        wait_until(lambda: caught_up(database_url, group, ends), "the restarted sink")
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(30)


def snapshot(database_url: str) -> dict[str, list[str]]:
    """Every row of every table of the store, as sorted JSON text (applied_at excluded)."""
    with psycopg.connect(database_url) as connection:
        tables = [row[0] for row in connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'reconciled'"
            " AND tablename <> 'schema_migrations' ORDER BY 1"
        )]
        return {
            table: [row[0] for row in connection.execute(
                f'SELECT to_jsonb(t)::text AS row FROM reconciled."{table}" AS t ORDER BY 1'
            )]
            for table in tables
        }


def person(version: int, given_name: str, record_id: str, **fields: Any) -> dict[str, Any]:
    record = example_reconciled("person")
    record.update({
        "golden_version": version, "given_name": given_name, "family_name": "Pipeline",
        "middle_name": None, "aliases": [],
        "last_updated": datetime(2026, 1, 1, tzinfo=UTC).replace(minute=version % 60),
        "sources": [{"agency_id": "police-ctu", "source_record_id": record_id,
                     "source_version": version, "event_time": datetime(2026, 1, 1, tzinfo=UTC),
                     "deleted": False}],
        **fields,
    })
    return record


# --- the tests ----------------------------------------------------------------------------


def test_rewinding_and_reconsuming_leaves_every_table_identical(
    topics: Topics, database_url: str
) -> None:
    kept, deleted, merged = (str(uuid.uuid4()) for _ in range(3))
    case_id, link_id = str(uuid.uuid4()), str(uuid.uuid4())
    for version in (1, 2, 3):
        topics.publish("person", kept, person(version, f"Version{version}", "K-1"))
    topics.publish("person", kept, person(2, "Stale", "K-1"))  # republished late: ignored
    topics.publish("person", deleted, person(1, "Deleted", "D-1"))
    topics.publish("person", deleted, None)
    topics.publish("person", merged, person(1, "Merged", "M-1"))
    topics.publish("person", merged, {**person(2, "", "M-1"), "merged_into": kept,
                                      "sources": [], "lineage": []})
    topics.publish("person", kept, {**person(4, "Survivor", "K-1"), "sources": [
        *person(4, "", "K-1")["sources"], *person(4, "", "M-1")["sources"]]})
    topics.publish("case", case_id, example_reconciled("case") | {"case_id": case_id})
    topics.publish("link", link_id, example_reconciled("link") | {
        "link_id": link_id, "from_id": merged, "to_id": case_id})
    topics.publish("match_decision", b"decision", example_reconciled("match_decision"))
    topics.flush()
    group = f"sink-{uuid.uuid4().hex[:8]}"

    run_sink_until_caught_up(topics, database_url, group)
    first = snapshot(database_url)
    with psycopg.connect(database_url, autocommit=True) as connection:
        people = connection.execute(
            "SELECT person_id::text, given_name, golden_version, agencies, source_count"
            " FROM reconciled.person"
        ).fetchall()
        assert people == [(kept, "Survivor", 4, ["police-ctu"], 2)]
        # The link names the merged id; the view shows the survivor.
        assert connection.execute(
            "SELECT person_id::text, role FROM reconciled.case_people"
        ).fetchall() == [(kept, "VICTIM")]
        assert connection.execute("SELECT count(*) FROM reconciled.match_decision").fetchone() \
            == (1,)
        connection.execute("DELETE FROM reconciled.sink_offsets WHERE consumer_group = %s",
                           (group,))

    run_sink_until_caught_up(topics, database_url, group)
    assert snapshot(database_url) == first


def test_bad_events_go_to_the_dead_letter_topic_and_the_good_ones_are_written(
    topics: Topics, database_url: str
) -> None:
    good, undecodable, bad_date = (str(uuid.uuid4()) for _ in range(3))
    location_id = str(uuid.uuid4())
    truncated = topics.serializers["person"]({**person(1, "Cut", "C-1"), "person_id": undecodable})
    topics.publish("person", undecodable, truncated[:12])
    topics.publish("person", bad_date, person(1, "Baddate", "B-1", date_of_birth="1990-02-31"))
    topics.publish("person", "not-a-uuid", person(1, "Badkey", "B-2"))
    topics.publish("location", location_id, example_reconciled("location") | {
        "location_id": location_id, "latitude": 95.0})  # violates the table's CHECK
    topics.publish("person", good, person(1, "Good", "G-1"))
    topics.flush()

    sink = run_sink_until_caught_up(topics, database_url, f"sink-{uuid.uuid4().hex[:8]}")

    assert sink.statistics.dead_letters == 4
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT person_id::text FROM reconciled.person").fetchall() \
            == [(good,)]
    letters = topics.dead_letters_received(4)
    reasons, codes = {}, {}
    for letter in letters:
        headers = read_dead_letter_headers(letter.headers())
        # the one dead-letter format of every stage (schemas.dead_letters)
        assert set(headers) == set(DEAD_LETTER_HEADERS)
        assert headers["tipsync.stage"] == "sink"
        assert headers["tipsync.source_topic"] in (topics.of["person"], topics.of["location"])
        reasons[letter.key()] = headers["tipsync.detail"]
        codes[letter.key()] = headers["tipsync.reason"]
        assert "Baddate" not in headers["tipsync.detail"]
        assert "1990-02-31" not in headers["tipsync.detail"]
    assert codes == {undecodable.encode(): "undecodable", bad_date.encode(): "invalid_record",
                     b"not-a-uuid": "bad_key", location_id.encode(): "refused_by_postgresql"}
    assert "does not decode" in reasons[undecodable.encode()]
    assert "date_of_birth is not a date" in reasons[bad_date.encode()]
    assert "not a UUID" in reasons[b"not-a-uuid"]
    assert "CheckViolation" in reasons[location_id.encode()]
    assert "location_latitude_check" in reasons[location_id.encode()]


def test_a_dropped_database_connection_is_retried_without_loss(
    topics: Topics, database_url: str, stack: Settings
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(20)]
    for version in range(1, 6):
        for index, golden_id in enumerate(ids):
            topics.publish("person", golden_id, person(version, f"P{version}", f"R-{index}"))
    topics.flush()
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]

    def drop_the_sinks_connections() -> None:
        # The sink's sessions are another role's: only an administrator may end them.
        with psycopg.connect(conninfo_as(stack.database_url, "tipsync_admin"),
                             autocommit=True) as admin:
            wait_until(lambda: admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                " AND application_name = %s", (dbname, SINK_APPLICATION_NAME)
            ).fetchone() == (1,), "the sink to connect")
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
                " AND application_name = %s", (dbname, SINK_APPLICATION_NAME),
            )

    sink = run_sink_until_caught_up(topics, database_url, f"sink-{uuid.uuid4().hex[:8]}",
                                    during=drop_the_sinks_connections)
    with psycopg.connect(database_url) as connection:
        assert connection.execute(
            "SELECT count(*), min(golden_version), max(golden_version) FROM reconciled.person"
        ).fetchone() == (20, 5, 5)
    assert sink.statistics.dead_letters == 0


def test_sigkill_and_restart_give_the_same_final_state(
    topics: Topics, database_url: str, stack: Settings, tmp_path: Any
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(30)]
    for version in range(1, 41):
        for index, golden_id in enumerate(ids):
            if version == 40 and index % 7 == 0:
                topics.publish("person", golden_id, None)
            else:
                topics.publish("person", golden_id, person(version, f"V{version}", f"S-{index}"))
    topics.flush()
    ends = topics.end_offsets()
    group = f"sink-{uuid.uuid4().hex[:8]}"
    command = [
        sys.executable, "-m", "deploy.cli", "sink", "--topic-root", topics.root,
        "--group", group,
        "--database-url", conninfo_as(database_url, SINK_ROLE), "--batch-size", "5",
        "--batch-seconds", "0.2",
        "--instance-id", f"{group}-only",
    ]

    def stored_total() -> int:
        return offsets_stored(database_url, topics, group)

    log = (tmp_path / "sink.log").open("w")
    first = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        wait_until(lambda: stored_total() > 0, "the first batches", every_seconds=0.02)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert stored_total() < sum(ends.values()), "the sink finished before it could be killed"
    restart_until_caught_up(command, log, database_url, group, ends)
    after_kill = snapshot(database_url)

    with scratch_database(stack.database_url, "test_reference") as reference_url:
        migrate(reference_url)
        run_sink_until_caught_up(topics, reference_url, f"{group}-reference")
        reference = snapshot(reference_url)
    # Same rows everywhere; the offsets differ only in the consumer group's name.
    assert reference.pop("sink_offsets") == [
        row.replace(f'"{group}"', f'"{group}-reference"') for row in after_kill.pop("sink_offsets")
    ]
    assert reference == after_kill
    assert len(after_kill["person"]) == len(ids) - len(range(0, 30, 7))



def test_a_change_at_a_trickle_is_written_as_soon_as_the_sink_has_caught_up(
    topics: Topics, database_url: str
) -> None:
    # A window far longer than the test's patience: only the caught-up rule can close the
    # batch in time.
    window = 30.0
    golden_id = str(uuid.uuid4())
    group = f"sink-{uuid.uuid4().hex[:8]}"
    sink = ReconciledSink(topics.settings, topics.options(group, batch_seconds=window),
                          conninfo_as(database_url, SINK_ROLE))
    stop = threading.Event()
    thread = threading.Thread(target=sink.run, args=(stop.is_set,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: sink._stored != {}, "the sink's assignment")
        latencies = []
        for version in (1, 2, 3):
            topics.publish("person", golden_id, person(version, f"Trickle{version}", "T-1"))
            topics.flush()
            published = time.monotonic()

            def stored(version: int = version) -> bool:
                with psycopg.connect(database_url) as connection:
                    return connection.execute(
                        "SELECT golden_version FROM reconciled.person WHERE person_id = %s",
                        (golden_id,)).fetchone() == (version,)

            wait_until(stored, f"version {version} in the store", every_seconds=0.05)
            latencies.append(time.monotonic() - published)
    finally:
        stop.set()
        thread.join(TIMEOUT_SECONDS)
    assert max(latencies) < window / 3, latencies
    assert sink.statistics.batches >= 3


# --- batch N+1 read and prepared while PostgreSQL writes batch N -----------------------------
# The test holds an EXCLUSIVE lock on reconciled.sink_offsets from a second connection: the
# sink's write of a batch then waits inside its transaction, at its offsets (its rows are
# written, nothing is committed), until the test lets go.


@contextmanager
def offsets_locked(database_url: str) -> Iterator[Callable[[], None]]:
    """Hold the lock; yields ``release()`` (also called on the way out)."""
    connection = psycopg.connect(database_url)  # a transaction from the first statement
    connection.execute("LOCK TABLE reconciled.sink_offsets IN EXCLUSIVE MODE")
    try:
        yield connection.rollback
    finally:
        connection.rollback()
        connection.close()


def sinks_waiting_on_a_lock(stack: Settings, database_url: str) -> int:
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    # What another role's session waits for only an administrator may see.
    with psycopg.connect(conninfo_as(stack.database_url, "tipsync_admin")) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s"
            " AND wait_event_type = 'Lock'", (dbname, SINK_APPLICATION_NAME),
        ).fetchone()
    return row[0] if row else 0


def people_stored(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT count(*) FROM reconciled.person").fetchone()
    return row[0] if row else 0


def publish_versions(topics: Topics, ids: list[str], versions: range) -> int:
    for version in versions:
        for index, golden_id in enumerate(ids):
            topics.publish("person", golden_id, person(version, f"V{version}", f"O-{index}"))
    topics.flush()
    return len(ids) * len(versions)


def reference_snapshot(topics: Topics, stack: Settings, group: str) -> dict[str, list[str]]:
    """The store one sink writes from the same topics without interference, offsets renamed
    to ``group``'s."""
    with scratch_database(stack.database_url, "test_reference") as reference_url:
        migrate(reference_url)
        run_sink_until_caught_up(topics, reference_url, f"{group}-reference")
        reference = snapshot(reference_url)
    reference["sink_offsets"] = [row.replace(f'"{group}-reference"', f'"{group}"')
                                 for row in reference["sink_offsets"]]
    return reference


class SinkThread:
    """A sink running in a thread of the test, stopped and joined on the way out."""

    def __init__(self, sink: ReconciledSink) -> None:
        self.sink = sink
        self.stop = threading.Event()
        self.failure: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.sink.run(self.stop.is_set)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test thread
            self.failure.append(error)

    def join(self) -> None:
        self.stop.set()
        self.thread.join(TIMEOUT_SECONDS)
        assert not self.thread.is_alive(), "the sink did not stop"
        if self.failure:
            raise self.failure[0]


def test_the_next_batch_is_prepared_while_postgresql_writes_and_every_change_lands_once(
    topics: Topics, database_url: str, stack: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(12)]
    group = f"sink-{uuid.uuid4().hex[:8]}"
    prepared: list[tuple[int, int]] = []  # (partition, offset) of every message prepared
    real_prepare_batch = consumer_module.prepare_batch

    def observed_prepare_batch(messages: list[Message], *arguments: Any) -> PreparedBatch:
        prepared.extend((message.partition, message.offset) for message in messages)
        return real_prepare_batch(messages, *arguments)

    monkeypatch.setattr(consumer_module, "prepare_batch", observed_prepare_batch)
    running = SinkThread(ReconciledSink(topics.settings, topics.options(group),
                                        conninfo_as(database_url, SINK_ROLE)))
    try:
        wait_until(lambda: running.sink._stored != {}, "the sink's assignment")
        with offsets_locked(database_url) as release:
            # Batch N: one change; its write waits for the lock, inside its transaction.
            published = publish_versions(topics, ids[:1], range(1, 2))
            wait_until(lambda: sinks_waiting_on_a_lock(stack, database_url) == 1,
                       "the sink's first write to wait for the lock")
            before = topics.end_offsets()
            published += publish_versions(topics, ids, range(2, 5))
            after = topics.end_offsets()
            later = {(partition, offset) for (topic, partition), end in after.items()
                     if topic == topics.of["person"]
                     for offset in range(before[(topic, partition)], end)}
            # Batch N+1, read and prepared while batch N is still being written.
            wait_until(lambda: not later.isdisjoint(prepared),
                       "the next batch to be prepared while the first one is written")
            assert sinks_waiting_on_a_lock(stack, database_url) == 1
            assert people_stored(database_url) == 0
            release()
            wait_until(lambda: caught_up(database_url, group, after),
                       "the sink to store everything")
    finally:
        running.join()
    # Each message was prepared once and counted in one committed batch: nothing was read
    # again, dropped or written twice.
    assert sorted(prepared) == sorted(set(prepared)) and len(prepared) == published
    assert running.sink.statistics.messages == published
    assert running.sink.statistics.retries == 0
    with psycopg.connect(database_url) as connection:
        assert connection.execute(
            "SELECT count(*), min(golden_version), max(golden_version) FROM reconciled.person"
        ).fetchone() == (len(ids), 4, 4)
    assert snapshot(database_url) == reference_snapshot(topics, stack, group)


class RevokeObservingSink(ReconciledSink):
    """A sink that tells the test when a rebalance takes its partitions."""

    def __init__(self, *arguments: Any) -> None:
        super().__init__(*arguments)
        self.revoking = threading.Event()

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.revoking.set()
        super()._on_revoke(consumer, partitions)


def end_the_sessions_waiting_on_a_lock(stack: Settings, database_url: str) -> None:
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    # The sink's sessions are another role's: only an administrator may end them.
    with psycopg.connect(conninfo_as(stack.database_url, "tipsync_admin"),
                         autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
            " AND application_name = %s AND wait_event_type = 'Lock'",
            (dbname, SINK_APPLICATION_NAME),
        )


def test_a_rebalance_during_a_write_waits_for_it_and_loses_and_duplicates_nothing(
    topics: Topics, database_url: str, stack: Settings
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(12)]
    group = f"sink-{uuid.uuid4().hex[:8]}"
    url = conninfo_as(database_url, SINK_ROLE)
    observed = RevokeObservingSink(topics.settings, topics.options(group), url)
    first = SinkThread(observed)
    second: SinkThread | None = None
    try:
        wait_until(lambda: first.sink._stored != {}, "the first sink's assignment")
        observed.revoking.clear()
        with offsets_locked(database_url) as release:
            # One change: the sink goes on reading (into a rebalance) while it is written.
            published = publish_versions(topics, ids[:1], range(1, 2))
            wait_until(lambda: sinks_waiting_on_a_lock(stack, database_url) == 1,
                       "the first sink's write to wait for the lock")
            second = SinkThread(ReconciledSink(topics.settings, topics.options(group), url))
            # The rebalance reaches the first sink while its write waits: its revoke waits too.
            wait_until(observed.revoking.is_set, "the rebalance to reach the first sink")
            time.sleep(1.0)
            assert sinks_waiting_on_a_lock(stack, database_url) == 1
            assert second.sink._stored == {}, "partitions handed over before the write ended"
            # The write fails (PostgreSQL ended its session): the batch is dropped and read
            # again, by whichever sink owns its partitions after the rebalance.
            end_the_sessions_waiting_on_a_lock(stack, database_url)
            wait_until(lambda: second is not None and second.sink._stored != {},
                       "the second sink's assignment")
            release()
            published += publish_versions(topics, ids, range(2, 5))
            wait_until(lambda: caught_up(database_url, group, topics.end_offsets()),
                       "the two sinks to store everything")
    finally:
        first.join()
        if second is not None:
            second.join()
    # Every message in exactly one committed batch of one of the two sinks.
    assert first.sink.statistics.messages + second.sink.statistics.messages == published
    assert snapshot(database_url) == reference_snapshot(topics, stack, group)


def test_sigkill_during_a_write_commits_nothing_and_sigterm_lets_the_write_finish(
    topics: Topics, database_url: str, stack: Settings, tmp_path: Any
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(12)]
    group = f"sink-{uuid.uuid4().hex[:8]}"
    publish_versions(topics, ids, range(1, 4))
    ends = topics.end_offsets()
    command = [
        sys.executable, "-m", "deploy.cli", "sink", "--topic-root", topics.root,
        "--group", group, "--database-url", conninfo_as(database_url, SINK_ROLE),
        "--batch-size", "10", "--instance-id", f"{group}-only",
    ]

    def stored_total() -> int:
        return offsets_stored(database_url, topics, group)

    log = (tmp_path / "sink.log").open("w")
    with offsets_locked(database_url):
        killed = subprocess.Popen(command, stdout=log, stderr=log)
        try:
            wait_until(lambda: sinks_waiting_on_a_lock(stack, database_url) == 1,
                       "the killed sink's first write to wait for the lock")
            time.sleep(0.5)  # and the next batches to be read and prepared
        finally:
            killed.send_signal(signal.SIGKILL)
            killed.wait(10)
    # The lock is gone; the killed sink's transaction never got its COMMIT.
    time.sleep(1.0)
    assert (people_stored(database_url), stored_total()) == (0, 0)

    with offsets_locked(database_url) as release:
        stopped = subprocess.Popen(command, stdout=log, stderr=log)
        try:
            wait_until(lambda: sinks_waiting_on_a_lock(stack, database_url) == 1,
                       "the stopped sink's first write to wait for the lock")
            stopped.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            assert stopped.poll() is None, "the sink left before its write ended"
            release()
            assert stopped.wait(30) == 0
        finally:
            if stopped.poll() is None:
                stopped.kill()
                stopped.wait(10)
    # The write in flight when the signal came committed (with the next one, if it had been
    # prepared by then), and nothing after it.
    assert 0 < stored_total() <= 20 and people_stored(database_url) > 0

    restart_until_caught_up(command, log, database_url, group, ends)
    assert snapshot(database_url) == reference_snapshot(topics, stack, group)
