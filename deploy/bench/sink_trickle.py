"""``tipsync bench sink --trickle``: how long the sink keeps a change at a trickle, with the
batch closed as soon as the sink has caught up (the default) and with the fixed window of
earlier versions, in the same run.

For each mode: fresh reconciled topics (under a root of the run's own; the sink reads all of
them, as in production) and a scratch database, one ``ReconciledSink`` (its own role, default
window and batch size), and reconciled person
changes published at ``--rate`` per second for ``--seconds``, each a new golden id. A change's
sink latency = PostgreSQL's commit timestamp of its ``reconciled.person`` row minus the
moment it was handed to the producer (no linger: sent at once). The stream app is left out:
this is the sink's share of the pipeline's freshness.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from typing import Any

import psycopg
from confluent_kafka import Producer

from deploy.bench.scratch import scratch_database
from deploy.bench.sink import golden_person, synthetic_people
from deploy.operations.drive import percentile
from schemas.config import Settings
from schemas.registration import register_all
from schemas.serde import AvroSerializer, SchemaRegistry
from schemas.topics import TopicNames, TopicSpec, create_topics
from sinks.consumer import ReconciledSink, SinkOptions
from sinks.migrate import migrate
from sinks.roles import SINK_ROLE, conninfo_as

PARTITIONS = 3


def run_trickle(settings: Settings, rate: float, seconds: float, seed: int) -> int:
    load_start = os.getloadavg()
    print(f"tipsync bench sink --trickle: {rate:g} changes/s for {seconds:g} s per mode, "
          f"{PARTITIONS} partitions; load average {load_start[0]:.2f}", flush=True)
    with SchemaRegistry(settings.client.registry()) as registry:
        register_all(registry)
        serialize = AvroSerializer(registry, "reconciled.person")
    figures: dict[str, Any] = {"benchmark": "sink-trickle", "rate": rate, "seconds": seconds,
                               "load_average_start": [round(v, 2) for v in load_start]}
    for mode, adaptive in (("fixed 1 s window (before)", False),
                           ("closed when caught up (after)", True)):
        latencies = measure(settings, serialize, rate, seconds, seed, adaptive)
        figures[mode] = {
            "measured": len(latencies),
            **{f"p{rank}_seconds": round(percentile(latencies, rank), 3)
               for rank in (50, 95, 99)},
            "max_seconds": round(max(latencies), 3),
            "load_average": round(os.getloadavg()[0], 2),
        }
        print(f"{mode:<32} {len(latencies):,} changes: sink latency p50 "
              f"{figures[mode]['p50_seconds']} s, p95 {figures[mode]['p95_seconds']} s, p99 "
              f"{figures[mode]['p99_seconds']} s, max {figures[mode]['max_seconds']} s "
              f"(load average {figures[mode]['load_average']})", flush=True)
    print(json.dumps(figures), flush=True)
    return 0


def measure(settings: Settings, serialize: AvroSerializer, rate: float, seconds: float,
            seed: int, adaptive: bool) -> list[float]:
    names = TopicNames(f"bench-trickle-{uuid.uuid4().hex[:8]}")
    topic = names.reconciled("person")
    # Every reconciled topic, as the real sink reads them; only the person topic gets changes,
    # the others' partitions must still count as caught up.
    options = SinkOptions.under(names, close_when_caught_up=adaptive)
    create_topics(settings.client, [TopicSpec(name, PARTITIONS, 1) for name in options.topics]
                  + [TopicSpec(names.dlq("sink"), 1, 1)])
    total = int(rate * seconds)
    people = synthetic_people(total, random.Random(seed))
    sent: dict[str, float] = {}
    with scratch_database(settings.database_url, "trickle") as database_url:
        migrate(database_url)
        sink = ReconciledSink(settings, options, conninfo_as(database_url, SINK_ROLE))
        stop = threading.Event()
        thread = threading.Thread(target=sink.run, args=(stop.is_set,), daemon=True)
        thread.start()
        try:
            while not sink._stored:  # assigned: the sink is reading
                time.sleep(0.1)
            time.sleep(2.0)
            producer = Producer(settings.client.librdkafka({"enable.idempotence": True,
                                                            "linger.ms": 0}))
            began = time.monotonic()
            for index in range(total):
                time.sleep(max(0.0, began + index / rate - time.monotonic()))
                golden_id = str(uuid.uuid4())
                value = serialize({**golden_person(people[index], 1, index),
                                   "person_id": golden_id})
                sent[golden_id] = time.time()
                producer.produce(topic, key=golden_id.encode(), value=value)
                producer.poll(0)
            producer.flush(30)
            latencies = wait_for_rows(database_url, sent)
        finally:
            stop.set()
            thread.join(60)
    return latencies


def wait_for_rows(database_url: str, sent: dict[str, float], timeout: float = 60) -> list[float]:
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as connection:
        while True:
            rows = connection.execute(
                "SELECT person_id::text, extract(epoch from pg_xact_commit_timestamp(xmin))"
                " FROM reconciled.person").fetchall()
            if len(rows) >= len(sent) or time.monotonic() > deadline:
                return [float(committed) - sent[person_id] for person_id, committed in rows
                        if committed is not None and person_id in sent]
            time.sleep(0.2)
