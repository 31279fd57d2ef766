"""``tipsync bench sink --peers``: ``tipsync sink`` and the Debezium JDBC sink connector on the
same reconciled person changes, side by side, in one run.

1. Synthetic reconciled person changes (``deploy.bench.sink``: about ``changes / keys``
   versions per golden id, 1% tombstones) are published twice under a topic root of the
   run's own: Avro in the Confluent wire format on ``<root>.reconciled.person`` (what the
   resolver writes and ``tipsync sink`` reads), and a JSON copy of each change on
   ``<root>.peer.person`` for the connector. Both topics have the same partitions and one
   producer writes them, keyed by golden id (the copy's key as a JSON struct, which the
   connector needs), so every key's changes are in the same order in both.
2. ``tipsync sink`` (``ReconciledSink``, its own role) reads the Avro topic into one scratch
   database; the clock runs from its start until the offsets it stores reach the topic's end.
3. Kafka Connect standalone (``connect-runtime`` at the broker's version) runs
   ``io.debezium.connector.jdbc.JdbcSinkConnector`` (upsert by the record key, deletes on
   tombstones, the table made by the connector) on the JSON copy into another scratch
   database, with the admin's SASL_SSL settings; the clock runs from the JVM's start until
   the connector's consumer group has committed the topic's end.
4. The end states are compared row by row: person id, golden version, names, date of birth
   and sex of every live person.

Why a JSON copy and not the Avro topic itself: the connector needs a Kafka Connect converter
for the topic. The one for this registry (Apicurio's ``AvroConverter``) reads Apicurio's own
id format unless reconfigured for the Confluent format, over the registry's TLS and basic
authentication; and the golden person holds arrays of records (identifiers, addresses,
sources, lineage) that the JDBC sink cannot map to columns. The copy keeps the scalar fields
as columns and the whole record as one JSON text column, so the connector writes a row of
about the same size; ``JsonConverter`` (Kafka's own) with inline schemas decodes it.

Both sinks write on the same PostgreSQL server, one after the other (never at the same time).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from psycopg.conninfo import conninfo_to_dict

from deploy.bench.scratch import scratch_database
from deploy.bench.serde import cpu_model
from deploy.bench.sink import synthetic_batches
from deploy.stack.artifacts import connect_classpath, java_executable
from deploy.stack.clients import java_security_properties
from deploy.stack.layout import StateLayout, private_folder
from deploy.stack.processes import port_is_free
from schemas.config import Settings
from schemas.registration import register_all
from schemas.serde import AvroSerializer, SchemaRegistry
from schemas.topics import TopicNames, TopicSpec, create_topics
from sinks import store
from sinks.consumer import ReconciledSink, SinkOptions
from sinks.migrate import migrate
from sinks.roles import SINK_ROLE, conninfo_as

CONNECTOR = "io.debezium.connector.jdbc.JdbcSinkConnector"
PEER_TABLE = "person_peer"
CONNECT_REST_PORT = 29088  # Kafka Connect's REST listener, loopback only, free below 32768
WAIT_SECONDS = 1800.0
# The JSON copy's fields: the scalar ones as columns, the whole record as JSON text.
FLAT_FIELDS = (("golden_version", "int64", False), ("given_name", "string", True),
               ("middle_name", "string", True), ("family_name", "string", True),
               ("date_of_birth", "string", True), ("sex", "string", True),
               ("classification", "string", True), ("document", "string", False))
KEY_SCHEMA = {"type": "struct", "name": "tipsync.peer.PersonKey", "optional": False,
              "fields": [{"field": "person_id", "type": "string", "optional": False}]}
COMPARED = "person_id::text, golden_version, given_name, family_name, date_of_birth::text, sex"


def run_peers(settings: Settings, changes: int, keys: int, partitions: int, seed: int) -> int:
    load_start = os.getloadavg()
    root = f"bench-peers-{uuid.uuid4().hex[:8]}"
    names = TopicNames(root)
    avro_topic, json_topic = names.reconciled("person"), f"{root}.peer.person"
    print(f"tipsync bench sink --peers: {changes:,} reconciled person changes over {keys:,} "
          f"golden ids, 1% tombstones, {partitions} partitions (topic root {root})")
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}; load average "
          f"{' '.join(f'{value:.2f}' for value in load_start)}", flush=True)
    create_topics(settings.client, [TopicSpec(avro_topic, partitions, 1),
                                    TopicSpec(json_topic, partitions, 1),
                                    TopicSpec(names.dlq("sink"), 1, 1)])
    published = publish_changes(settings, avro_topic, json_topic, changes, keys, seed)
    print(f"published {published:,} changes to each topic", flush=True)
    with scratch_database(settings.database_url, "peer_tipsync") as tipsync_url, \
            scratch_database(settings.database_url, "peer_debezium") as peer_url:
        migrate(tipsync_url)
        ours_clock = run_tipsync_sink(settings, names, avro_topic, tipsync_url)
        print(f"tipsync sink    : {ours_clock.describe()}; load average "
              f"{os.getloadavg()[0]:.2f}", flush=True)
        peer_clock = run_debezium(settings, json_topic, peer_url, root)
        print(f"Debezium JDBC   : {peer_clock.describe()}; JVM start included; load average "
              f"{os.getloadavg()[0]:.2f}", flush=True)
        ours, theirs, differing = compare(tipsync_url, peer_url)
    print(f"end state: tipsync {ours:,} people, Debezium {theirs:,} people, "
          f"{differing:,} rows differ", flush=True)
    ratio = peer_clock.seconds / ours_clock.seconds
    print(f"tipsync / Debezium changes/s: {ratio:.2f}   (goal: >= 10)", flush=True)
    delete_topics(settings, [avro_topic, json_topic, names.dlq("sink")])
    print(json.dumps({
        "benchmark": "sink-peers", "changes": published, "keys": keys,
        "partitions": partitions, "tipsync": ours_clock.figures(),
        "debezium": peer_clock.figures(), "ratio": round(ratio, 2), "people": ours,
        "peer_people": theirs, "rows_differing": differing,
        "load_average_start": [round(value, 2) for value in load_start],
        "load_average_end": [round(value, 2) for value in os.getloadavg()],
    }), flush=True)
    return 0 if differing == 0 and ours == theirs else 1


# --------------------------------------------------------------------------- the changes


def flat_schema() -> dict[str, Any]:
    return {"type": "struct", "name": "tipsync.peer.Person", "optional": False,
            "fields": [{"field": name, "type": kind, "optional": optional}
                       for name, kind, optional in FLAT_FIELDS]}


def flat_copy(record: dict[str, Any]) -> bytes:
    """The JSON (with its schema, as ``JsonConverter`` reads it) of one golden person."""
    payload = {name: record.get(name) for name, _kind, _optional in FLAT_FIELDS[:-1]}
    payload["document"] = json.dumps(record, default=str, sort_keys=True)
    return json.dumps({"schema": flat_schema(), "payload": payload}).encode()


def flat_key(key: bytes) -> bytes:
    """The connector's record key: a struct with the golden id (it reads key fields by
    name, so a plain string key does not do)."""
    return json.dumps({"schema": KEY_SCHEMA, "payload": {"person_id": key.decode()}}).encode()


def publish_changes(settings: Settings, avro_topic: str, json_topic: str, changes: int,
                    keys: int, seed: int) -> int:
    with SchemaRegistry(settings.client.registry()) as registry:
        register_all(registry)
        serialize = AvroSerializer(registry, "reconciled.person")
    producer = Producer(settings.client.librdkafka({
        "enable.idempotence": True, "linger.ms": 20, "compression.type": "lz4",
        "queue.buffering.max.messages": 500_000}))
    published = 0
    for messages, values in synthetic_batches(changes, keys, 50_000, seed):
        for message in messages:
            key = message.key
            assert key is not None
            value = values[message.offset]
            avro = None if value is None else serialize({**value, "person_id": key.decode()})
            flat = None if value is None else flat_copy(value)
            for topic, topic_key, encoded in ((avro_topic, key, avro),
                                              (json_topic, flat_key(key), flat)):
                while True:
                    try:
                        producer.produce(topic, key=topic_key, value=encoded)
                        break
                    except BufferError:
                        producer.poll(0.1)
            published += 1
        producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("Kafka did not acknowledge every change within 120 s; run again")
    return published


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = Consumer(settings.client.librdkafka({"group.id": f"bench-peers-{uuid.uuid4()}"}))
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        return {partition: consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=10)[1]
            for partition in metadata.partitions}
    finally:
        consumer.close()


def delete_topics(settings: Settings, topics: list[str]) -> None:
    admin = AdminClient(settings.client.librdkafka())
    for future in admin.delete_topics(topics, operation_timeout=30).values():
        try:
            future.result()
        except Exception as error:  # noqa: BLE001 - a leftover topic is reported, not fatal
            print(f"note: a bench topic was not deleted ({error})")


# --------------------------------------------------------------------------- the clock


class Progress:
    """When a sink started, first stored some offsets and reached the end, from polls of the
    offsets it keeps (PostgreSQL for tipsync, the consumer group for Connect)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.began = time.monotonic()
        self.first: tuple[float, int] | None = None  # (seconds, offsets stored then)
        self.seconds = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def seen(self, done: dict[int, int], ends: dict[int, int]) -> bool:
        stored = sum(max(0, done.get(partition, 0)) for partition in ends)
        if stored and self.first is None:
            self.first = (self.elapsed(), stored)
        if all(done.get(partition, -1) >= end for partition, end in ends.items()):
            self.seconds = self.elapsed()
            return True
        return False

    def describe(self) -> str:
        rate = self.total / self.seconds
        text = f"{self.total:>10,} changes in {self.seconds:7.2f} s = {rate:>9,.0f} changes/s"
        if self.first is not None and self.seconds > self.first[0]:
            after = (self.total - self.first[1]) / (self.seconds - self.first[0])
            text += (f" (first offsets stored after {self.first[0]:.1f} s; "
                     f"{after:,.0f} changes/s from then on)")
        return text

    def figures(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 2),
                "changes_per_second": round(self.total / self.seconds),
                "first_stored_after": round(self.first[0], 2) if self.first else None}


# --------------------------------------------------------------------------- tipsync sink


def run_tipsync_sink(settings: Settings, names: TopicNames, topic: str, database_url: str
                     ) -> Progress:
    ends = end_offsets(settings, topic)
    group = f"{names.root}-tipsync"
    options = SinkOptions(topics={topic: "person"}, consumer_group=group,
                          dead_letter_topic=names.dlq("sink"))
    sink = ReconciledSink(settings, options, conninfo_as(database_url, SINK_ROLE))
    stop = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            sink.run(stop.is_set)
        except BaseException as error:  # noqa: BLE001 - re-raised below
            failure.append(error)

    clock = Progress(sum(ends.values()))
    thread = threading.Thread(target=run, name="tipsync-sink", daemon=True)
    thread.start()
    try:
        with psycopg.connect(database_url, autocommit=True) as connection:
            while not failure:
                stored = store.stored_offsets(connection, group, [topic])
                done = {partition: stored.get((topic, partition)) or 0 for partition in ends}
                if clock.seen(done, ends):
                    break
                if clock.elapsed() > WAIT_SECONDS:
                    raise RuntimeError(f"tipsync sink did not catch up in {WAIT_SECONDS:.0f} s")
                time.sleep(0.05)
    finally:
        stop.set()
        thread.join(60)
    if failure:
        raise failure[0]
    return clock


# --------------------------------------------------------------------------- Debezium


def postgres_owner_password(settings: Settings) -> str:
    parameters = conninfo_to_dict(settings.database_url)
    user = str(parameters.get("user") or "tipsync")
    passfile = Path(str(parameters.get("passfile") or settings.pgpass_file))
    for line in passfile.read_text(encoding="utf-8").splitlines():
        *_, role, password = line.split(":", 4)
        if role == user:
            return password
    raise RuntimeError(f"{passfile} holds no password for {user}; run `tipsync stack up`")


def jdbc_url(database_url: str) -> tuple[str, str]:
    """The JDBC URL (TLS verified against the same CA) and user of a libpq conninfo."""
    parameters = conninfo_to_dict(database_url)
    query = f"sslmode={parameters.get('sslmode', 'verify-full')}"
    if parameters.get("sslrootcert"):
        query += f"&sslrootcert={parameters['sslrootcert']}"
    url = (f"jdbc:postgresql://{parameters.get('host', '127.0.0.1')}:"
           f"{parameters.get('port', 5432)}/{parameters['dbname']}?{query}")
    return url, str(parameters.get("user") or "tipsync")


def write_private(path: Path, properties: dict[str, str]) -> None:
    """A properties file that may hold a password: created 0600, never shown."""
    text = "".join(f"{key}={value}\n" for key, value in properties.items())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


@contextmanager
def connect_folder(settings: Settings, root: str) -> Iterator[Path]:
    folder = StateLayout.of(settings).home / "bench-sink-peers" / root
    private_folder(folder.parent)
    private_folder(folder)
    try:
        yield folder
    finally:
        # The properties hold passwords; a log with something in it stays for a look.
        for item in folder.iterdir():
            if item.name != "connect.log" or item.stat().st_size == 0:
                item.unlink()
        if not any(folder.iterdir()):
            folder.rmdir()


def worker_properties(settings: Settings, folder: Path) -> dict[str, str]:
    security = java_security_properties(settings.client)
    worker = {
        **security,
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
        "offset.storage.file.filename": str(folder / "connect.offsets"),
        "offset.flush.interval.ms": "500",
        "listeners": f"http://127.0.0.1:{CONNECT_REST_PORT}",
        "plugin.discovery": "only_scan",
    }
    # The sink task's consumer takes its own security settings (the ``consumer.`` prefix).
    worker.update({f"consumer.{key}": value for key, value in security.items()
                   if key != "bootstrap.servers"})
    worker["consumer.max.poll.records"] = "5000"
    return worker


def connector_properties(settings: Settings, topic: str, database_url: str, root: str
                         ) -> dict[str, str]:
    url, user = jdbc_url(database_url)
    return {
        "name": f"{root}-debezium",
        "connector.class": CONNECTOR,
        "tasks.max": "1",
        "topics": topic,
        "connection.url": url,
        "connection.username": user,
        "connection.password": postgres_owner_password(settings),
        "insert.mode": "upsert",
        "delete.enabled": "true",
        "primary.key.mode": "record_key",
        "primary.key.fields": "person_id",
        "schema.evolution": "basic",
        "collection.name.format": PEER_TABLE,
        "table.name.format": PEER_TABLE,
        "batch.size": "5000",
        # Keep only the last change per key of a batch, as tipsync's sink does.
        "use.reduction.buffer": "true",
    }


def committed(admin: AdminClient, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, partition) for partition in partitions])
    result = admin.list_consumer_group_offsets([request])[group].result()
    return {item.partition: item.offset for item in result.topic_partitions}


def run_debezium(settings: Settings, topic: str, database_url: str, root: str
                 ) -> Progress:
    if not port_is_free(CONNECT_REST_PORT):
        raise RuntimeError(f"port {CONNECT_REST_PORT} (Kafka Connect's REST listener) is "
                           "taken; free it and run again")
    ends = end_offsets(settings, topic)
    classpath = connect_classpath(StateLayout.of(settings))
    admin = AdminClient(settings.client.librdkafka())
    group = f"connect-{root}-debezium"
    with connect_folder(settings, root) as folder:
        worker, connector = folder / "worker.properties", folder / "connector.properties"
        write_private(worker, worker_properties(settings, folder))
        write_private(connector, connector_properties(settings, topic, database_url, root))
        log = folder / "connect.log"
        clock = Progress(sum(ends.values()))
        with open(log, "w", encoding="utf-8") as output:
            process = subprocess.Popen(
                [java_executable(17), "-Xmx1g", "-cp", classpath,
                 "org.apache.kafka.connect.cli.ConnectStandalone", str(worker), str(connector)],
                stdout=output, stderr=subprocess.STDOUT)
        try:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"Kafka Connect exited with {process.returncode}; see "
                                       f"{log}")
                try:
                    done = committed(admin, group, topic, list(ends))
                except Exception:  # noqa: BLE001 - the group does not exist yet
                    done = {}
                if clock.seen(done, ends):
                    return clock
                if clock.elapsed() > WAIT_SECONDS:
                    raise RuntimeError(f"the Debezium connector did not catch up in "
                                       f"{WAIT_SECONDS:.0f} s; see {log}")
                time.sleep(0.1)
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


# --------------------------------------------------------------------------- end state


def compare(tipsync_url: str, peer_url: str) -> tuple[int, int, int]:
    """People in each store and rows that differ (symmetric difference of the compared
    columns)."""
    with psycopg.connect(tipsync_url) as connection:
        ours = {tuple(row) for row in connection.execute(
            f"SELECT {COMPARED} FROM reconciled.person")}
    with psycopg.connect(peer_url) as connection:
        theirs = {tuple(row) for row in connection.execute(
            f"SELECT {COMPARED} FROM {PEER_TABLE}")}
    return len(ours), len(theirs), len(ours ^ theirs)
