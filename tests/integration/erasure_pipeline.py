"""The pipeline the erasure and retention tests run on: a stream worker and a sink on topics
of their own, which compact within seconds (Kafka's cleaner never touches the active segment:
``segment.ms`` 1 s rolls it at the first append a second later, ``min.cleanable.dirty.ratio``
0.01 makes it eligible at once, the broker's cleaner looks every 15 s), a throwaway database,
snapshots after every resolve message; and ``tipsync erase`` / ``retention enforce`` run as
the command an operator types. All people here are invented.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka.admin import NewTopic

from deploy.bench.scratch import scratch_database
from deploy.bench.stream_harness import StreamHarness
from schemas import config
from schemas.config import Settings
from schemas.examples import example_event
from schemas.registration import register_all
from schemas.topics import DLQ_STAGES, erasable_config, resolve_config
from sinks.consumer import ReconciledSink, SinkOptions
from sinks.migrate import migrate
from streams.snapshot import snapshot_directory

AGENCIES = ("police-ctu", "immigration")
ENTITIES = ("person", "case", "link")
TIMEOUT_SECONDS = 150
# what makes the test's topics compact within seconds of an erasure
FAST_COMPACTION = {"segment.ms": "1000", "min.cleanable.dirty.ratio": "0.01",
                   "max.compaction.lag.ms": "1000"}


def person_event(agency_id: str, record: str, given: str, family: str, trn: str,
                 **envelope: Any) -> dict[str, Any]:
    event = example_event("person", agency_id, record, **envelope)
    event["payload"].update(
        given_name=given, middle_name=None, family_name=family, aliases=[],
        identifiers=[{"scheme": "TRN", "value": trn, "issuing_country": "JM"}],
        phones=[], emails=[], addresses=[],
    )
    return event


class ErasurePipeline:
    def __init__(self, stack: Settings, harness: StreamHarness, database_url: str) -> None:
        self.stack, self.harness, self.database_url = stack, harness, database_url
        self.topics = harness.topics

    def create_topics(self) -> None:
        day = str(24 * 3600 * 1000)
        specs = [NewTopic(self.topics.agency(agency, entity), 3, 1,
                          config={**erasable_config(int(day)), **FAST_COMPACTION})
                 for agency in AGENCIES for entity in ENTITIES]
        specs.append(NewTopic(self.topics.resolve, 1, 1,
                              config={**resolve_config(), **FAST_COMPACTION}))
        specs += [NewTopic(self.topics.dlq(stage), 3, 1,
                           config={**erasable_config(int(day)), **FAST_COMPACTION})
                  for stage in DLQ_STAGES]
        for future in self.harness.admin.create_topics(specs, operation_timeout=30).values():
            future.result()

    def publish(self, entity: str, *events: dict[str, Any]) -> None:
        for event in events:
            self.harness.publish(entity, event)
        self.harness.flush()

    def publish_filler(self) -> None:
        """Appends that roll the active segments (compaction needs a rolled segment): an
        UPSERT of an unrelated person (agency and resolve topics), and one from the
        implausible future (a dead letter on the ingest dead-letter topic)."""
        tag = uuid.uuid4().hex[:8]
        self.publish("person", person_event(
            "police-ctu", f"FILL-{tag}", "Filler", "Rollover", f"7{int(tag, 16) % 10**8:08d}",
            event_id=str(uuid.uuid4())))
        self.publish("person", person_event(
            "police-ctu", f"FILL-{tag}", "Filler", "Rollover", "700000000",
            event_id=str(uuid.uuid4()), source_version=2**62))

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as connection:
            return connection.execute(query, params).fetchall()  # type: ignore[arg-type]

    def wait_for(self, done: Callable[[], bool], what: str,
                 timeout: float = TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} within {timeout:.0f} s; worker log:\n"
                                   + self.harness.worker_log()[-3000:])
            time.sleep(0.5)

    def stored(self, agency_id: str, record: str, entity: str = "person") -> bool:
        return bool(self.rows(
            f'SELECT 1 FROM reconciled."{entity}_source"'
            " WHERE agency_id = %s AND source_record_id = %s", agency_id, record))

    def tipsync(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "deploy.cli", *arguments, "--topic-root",
             self.harness.prefix, "--database-url", self.database_url, "--wait", "120"],
            capture_output=True, text=True, timeout=600, env=dict(os.environ),
        )

    def copies(self, topic: str, key: str) -> list[bytes | None]:
        """The values under ``key`` on ``topic`` now (None: a tombstone)."""
        return [received.value for received in self.harness.read(topic)
                if received.key == key.encode()]

    def snapshots(self) -> list[Path]:
        data_dir = (Path(self.stack.home) / "streams" / self.topics.stream_group / "worker-0")
        directory = snapshot_directory(data_dir)
        return sorted(directory.glob("resolve-*.snapshot")) if directory.is_dir() else []


@contextmanager
def erasure_pipeline(stack: Settings, purpose: str) -> Iterator[ErasurePipeline]:
    harness = StreamHarness(stack, agencies=AGENCIES, entities=ENTITIES)
    register_all(harness.registry)
    stop = threading.Event()
    failure: list[BaseException] = []
    thread: threading.Thread | None = None
    try:
        with scratch_database(stack.database_url, purpose) as database_url:
            migrate(database_url)
            pipeline = ErasurePipeline(stack, harness, database_url)
            pipeline.create_topics()
            harness.start_worker(environment={config.RESOLVE_SNAPSHOT_RECORDS: "1"})
            outputs = {harness.topics.reconciled(entity) for entity in ENTITIES}
            pipeline.wait_for(
                lambda: outputs <= set(harness.admin.list_topics(timeout=10).topics),
                "the worker's output topics")
            sink = ReconciledSink(stack, SinkOptions.under(
                harness.topics, consumer_group=f"{harness.prefix}-sink", batch_seconds=0.3,
            ), database_url)

            def work() -> None:
                try:
                    sink.run(stop.is_set)
                except BaseException as error:  # noqa: BLE001 - reported by the test
                    failure.append(error)

            thread = threading.Thread(target=work, daemon=True)
            thread.start()
            try:
                yield pipeline
            finally:
                stop.set()
                thread.join(60)
    finally:
        with suppress(Exception):
            harness.teardown()
    if failure:
        raise failure[0]
