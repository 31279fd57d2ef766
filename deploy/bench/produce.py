"""``tipsync bench produce``: our producer against Kafka's own Java producer, on one core.

1. builds (once, cached under <state folder>/bench) a synthetic person CSV of ``--rows`` rows;
2. pins itself to one CPU and runs the whole producer on it: read, normalise, validate
   against the contract, Avro-encode, publish with acks=all and idempotence, checkpoint;
3. runs ``org.apache.kafka.tools.ProducerPerformance`` (kafka-tools, from the local stack's
   jars) pinned to the same CPU with the same record count, average record size, acks,
   idempotence, linger, batch size and compression;
4. prints both rates and their ratio. Topics are created for the run and deleted after it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from deploy.bench.synthetic import write_person_csv
from producers.canonical import Entity
from producers.checkpoint import CheckpointStore, source_folder
from producers.delivery import DEFAULT_CONFIG, Publisher
from producers.encoding import make_serializer
from producers.events import Governance
from producers.file_source import FileOptions, produce_file
from producers.rejects import RejectsFile
from producers.tracker import ChangeTracker
from schemas.config import Settings, load_settings
from schemas.topics import TopicNames

AGENCY = "police-ctu"
PARTITIONS = 6


def register_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cpu", type=int, default=0, help="the CPU both runs are pinned to")
    parser.add_argument("--skip-java", action="store_true")


def run_bench(args: argparse.Namespace) -> int:
    settings = load_settings()
    data = settings.home / "bench" / f"persons-{args.rows}.csv"
    if not data.exists():
        print(f"writing {args.rows} synthetic person rows to {data} ...", flush=True)
        write_person_csv(data.with_suffix(".tmp"), args.rows).rename(data)
    os.sched_setaffinity(0, {args.cpu})
    run_id = uuid.uuid4().hex[:8]
    names = TopicNames(f"bench-{run_id}")
    topics = [names.agency(AGENCY, entity) for entity in ("person", "link")]
    java_topic = names.internal("java")
    admin = AdminClient(settings.client.librdkafka())
    _create_topics(admin, [*topics, java_topic])
    try:
        python = _python_run(settings, data, names)
        print(json.dumps({"python": python}), flush=True)
        figures: dict[str, Any] = {"python": python}
        if not args.skip_java:
            record_size = round(python["avg_value_bytes"])
            java = _java_run(settings, java_topic, python["events"], record_size)
            figures["java"] = java
            figures["ratio"] = round(python["events_per_second"] / java["records_per_second"], 3)
    finally:
        admin.delete_topics([*topics, java_topic])
    _print_table(figures, args)
    print(json.dumps(figures), flush=True)
    return 0


def _create_topics(admin: AdminClient, names: list[str]) -> None:
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1) for name in names]
    )
    for future in futures.values():
        future.result(timeout=30)


def _python_run(settings: Settings, data: Path, names: TopicNames) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tipsync-bench-") as home:
        folder = source_folder(Path(home), AGENCY, "person", str(data))
        store = CheckpointStore(folder, str(data))
        rejects = RejectsFile(folder, data.name)
        publisher = Publisher(settings.client)
        governance = Governance()
        serialize = make_serializer(settings, [Entity.PERSON, Entity.LINK], AGENCY, governance)
        tracker = ChangeTracker(
            AGENCY, store, publisher, serialize,
            lambda entity: names.agency(AGENCY, entity.value), governance,
        )
        started = time.perf_counter()
        cpu_started = time.process_time()
        read = produce_file(FileOptions(data, Entity.PERSON, None, False, False), tracker, rejects)
        tracker.finish()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        rejects.close()
        store.close()
    counts = tracker.counts
    return {
        "rows": read,
        "events": counts.acknowledged,
        "rejected": rejects.count,
        "seconds": round(elapsed, 2),
        "cpu_seconds": round(cpu, 2),
        "events_per_second": round(counts.acknowledged / elapsed),
        "avg_value_bytes": round(counts.value_bytes / max(counts.events, 1), 1),
    }


def _java_run(settings: Settings, topic: str, records: int, record_size: int) -> dict[str, Any]:
    from deploy.stack import kafka_classpath
    from deploy.stack.artifacts import java_executable
    from deploy.stack.clients import java_security_properties

    properties = {
        **java_security_properties(settings.client),
        "acks": "all",
        "enable.idempotence": "true",
        "linger.ms": str(DEFAULT_CONFIG["linger.ms"]),
        "batch.size": str(DEFAULT_CONFIG["batch.size"]),
        "compression.type": DEFAULT_CONFIG["compression.type"],
    }
    with tempfile.TemporaryDirectory(prefix="tipsync-bench-") as folder:
        # the producer's settings hold the password: a 0600 file, not the command line
        config_file = Path(folder) / "producer.properties"
        config_file.touch(mode=0o600)
        config_file.write_text(
            "".join(f"{key}={value}\n" for key, value in properties.items()), encoding="utf-8"
        )
        command = [
            java_executable(), "-Xmx512m", "-cp", kafka_classpath(settings),
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic", topic, "--num-records", str(records), "--record-size", str(record_size),
            "--throughput", "-1", "--producer.config", str(config_file),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"ProducerPerformance failed:\n{result.stdout}\n{result.stderr}")
    summary = [line for line in result.stdout.splitlines() if "records sent" in line][-1]
    match = re.search(r"([\d.]+) records/sec \(([\d.]+) MB/sec\)", summary)
    if not match:
        raise RuntimeError(f"cannot read ProducerPerformance's summary: {summary}")
    return {
        "records": records,
        "record_size": record_size,
        "records_per_second": round(float(match.group(1))),
        "mb_per_second": float(match.group(2)),
        "summary": summary.strip(),
    }


def _print_table(figures: dict[str, Any], args: argparse.Namespace) -> None:
    python = figures["python"]
    print(f"tipsync produce: {python['rows']} rows -> {python['events']} events in "
          f"{python['seconds']} s = {python['events_per_second']} events/s "
          f"(avg value {python['avg_value_bytes']} B, CPU {args.cpu})")
    if "java" in figures:
        java = figures["java"]
        print(f"Java ProducerPerformance: {java['records_per_second']} records/s "
              f"({java['mb_per_second']} MB/s, record size {java['record_size']} B)")
        print(f"ratio (tipsync / Java): {figures['ratio']}  (goal >= 0.3)")
