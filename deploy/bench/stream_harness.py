"""Drive the stream app from outside, through Kafka: for integration tests and ``bench stream``.

A ``StreamHarness`` owns a topic prefix of its own (``s<random>``), so its agency topics,
outputs, internal topics and consumer group never meet anyone else's on the shared broker.
It creates the agency topics, publishes events in the contract's wire format, starts real
``tipsync stream`` worker processes, reads what they publish, and deletes its topics at the
end. Nothing here is mocked.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from schemas import config
from schemas.config import Settings
from schemas.registration import register_all
from schemas.registry import SchemaRegistry
from schemas.serde import AvroDeserializer, AvroSerializer
from schemas.topics import TopicNames

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Received:
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    partition: int
    offset: int


def _as_bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


class StreamHarness:
    def __init__(
        self,
        settings: Settings,
        agencies: Iterable[str] = ("police-ctu", "immigration"),
        entities: Iterable[str] = ("person", "case", "link"),
        partitions: int = 3,
        prefix: str | None = None,
    ) -> None:
        self.settings = settings
        self.prefix = prefix or f"s{uuid.uuid4().hex[:10]}"
        self.topics = TopicNames(self.prefix)
        self.agencies = tuple(agencies)
        self.entities = tuple(entities)
        self.partitions = partitions
        self.registry = SchemaRegistry(settings.client.registry())
        self.deserializer = AvroDeserializer(self.registry)
        self._serializers: dict[str, AvroSerializer] = {}
        self.admin = AdminClient(settings.client.librdkafka())
        self.producer = Producer(settings.client.librdkafka(
            {"linger.ms": 20, "acks": "all",
             "enable.idempotence": True, "queue.buffering.max.messages": 1_000_000}
        ))
        self.workers: list[subprocess.Popen[bytes]] = []
        self._watcher: Consumer | None = None
        self.logs = Path(settings.home) / "streams" / "harness-logs"

    # ------------------------------------------------------------------ topics

    def agency_topic(self, agency_id: str, entity: str) -> str:
        return self.topics.agency(agency_id, entity)

    def setup(self) -> StreamHarness:
        register_all(self.registry)  # idempotent: the governed schemas, as production has them
        self.create_agency_topics(self.agencies, self.entities)
        return self

    def create_agency_topics(self, agencies: Iterable[str], entities: Iterable[str]) -> None:
        names = [self.agency_topic(a, e) for a in agencies for e in entities]
        futures = self.admin.create_topics(
            [NewTopic(name, self.partitions, 1) for name in names], operation_timeout=30
        )
        for future in futures.values():
            future.result()

    def teardown(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        names = [
            name for name in self.admin.list_topics(timeout=15).topics
            if self.topics.owns(name)
        ]
        if names:
            for future in self.admin.delete_topics(names, operation_timeout=30).values():
                # Best effort: a leftover topic under a random prefix harms no one.
                with contextlib.suppress(Exception):
                    future.result()
        if self._watcher is not None:
            self._watcher.close()
        self.registry.close()
        # the workers' table state of this prefix (logs stay, for a failed run's post-mortem)
        shutil.rmtree(Path(self.settings.home) / "streams" / self.topics.stream_group,
                      ignore_errors=True)

    # ------------------------------------------------------------------ publishing

    def serializer(self, entity: str) -> AvroSerializer:
        if entity not in self._serializers:
            self._serializers[entity] = AvroSerializer(self.registry, entity)
        return self._serializers[entity]

    def encode(self, entity: str, event: Mapping[str, Any]) -> bytes:
        return self.serializer(entity)(dict(event))

    def publish(self, entity: str, event: Mapping[str, Any]) -> None:
        key = f"{event['agency_id']}:{event['source_record_id']}".encode()
        self.publish_raw(
            self.agency_topic(event["agency_id"], entity), key, self.encode(entity, event)
        )

    def publish_raw(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key, value=value)
                return
            except BufferError:
                self.producer.poll(0.1)

    def flush(self) -> None:
        remaining = self.producer.flush(60)
        if remaining:
            raise RuntimeError(f"{remaining} events were not acknowledged by Kafka in 60 s")

    # ------------------------------------------------------------------ workers

    def start_worker(
        self, index: int = 0, store: str = "memory", extra: Iterable[str] = (),
        command: Sequence[str] = ("-m", "deploy.cli"), environment: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``tipsync stream`` as a process of its own. ``command`` (the interpreter's
        arguments before ``stream``) lets a test run the same CLI through a script of its own,
        e.g. one that makes a chosen event fail; ``environment`` adds variables."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{self.prefix}-worker-{index}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, *command, "stream", "--topic-root", self.prefix,
             "--worker-index", str(index), "--store", store, "--metrics-port", "0",
             "--discovery-interval", "5", *extra],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, config.HOME: str(self.settings.home), **(environment or {})},
        )
        self.workers.append(process)
        return process

    def stop_worker(self, process: subprocess.Popen[bytes], kill: bool = False) -> int:
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        return process.wait(timeout=60)

    # ------------------------------------------------------------------ reading

    def read(self, topic: str, timeout: float = 5.0) -> list[Received]:
        """Every message of ``topic`` now (all partitions, from the start)."""
        consumer = Consumer(self.settings.client.librdkafka({
            "group.id": f"{self.prefix}-read", "enable.auto.commit": False,
        }))
        try:
            metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
            if metadata is None or metadata.error is not None:
                return []
            try:
                bounds = {
                    p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                    for p in metadata.partitions
                }
            except KafkaException:
                return []  # a topic just created has no leader yet: nothing to read so far
            wanted = {p: (low, high) for p, (low, high) in bounds.items() if high > low}
            if not wanted:
                return []
            consumer.assign([TopicPartition(topic, p, low) for p, (low, _) in wanted.items()])
            received: list[Received] = []
            done = {p: False for p in wanted}
            deadline = time.monotonic() + max(timeout, 30.0)
            while not all(done.values()) and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None or message.error():
                    continue
                partition, offset = int(message.partition() or 0), int(message.offset() or 0)
                headers = {
                    str(pair[0]): (_as_bytes(pair[1]) or b"").decode()
                    for pair in message.headers() or []
                }
                received.append(Received(
                    _as_bytes(message.key()), _as_bytes(message.value()), headers,
                    partition, offset,
                ))
                if offset >= wanted[partition][1] - 1:
                    done[partition] = True
            return received
        finally:
            consumer.close()

    def decode(self, value: bytes | None) -> Any:
        """The record of a wire-format value, or None for a tombstone."""
        return None if value is None else self.deserializer(value).record

    def latest(self, topic: str) -> dict[str, Any]:
        """The compacted view of an output: key -> latest value (None for a tombstone)."""
        view: dict[str, Any] = {}
        for message in sorted(self.read(topic), key=lambda m: (m.partition, m.offset)):
            key = (message.key or b"").decode()
            if topic.startswith(self.topics.internal_prefix):
                view[key] = None if message.value is None else json.loads(message.value)
            else:
                view[key] = self.decode(message.value)
        return view

    def wait_for(
        self, condition: Callable[[], bool], timeout: float = 60.0, what: str = "the outputs"
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            for worker in self.workers:
                if worker.poll() not in (None, -signal.SIGKILL, -signal.SIGTERM, 0):
                    raise RuntimeError(
                        f"a stream worker exited with {worker.returncode} while waiting for "
                        f"{what}; see {self.logs}"
                    )
            time.sleep(0.5)
        raise TimeoutError(f"{what} did not appear within {timeout:g} s; see {self.logs}")

    def count(self, topic: str) -> int:
        """Messages in ``topic`` now (sum over partitions of high - low)."""
        if self._watcher is None:
            self._watcher = Consumer(
                self.settings.client.librdkafka({"group.id": f"{self.prefix}-count"})
            )
        try:
            metadata = self._watcher.list_topics(topic, timeout=10).topics.get(topic)
            if metadata is None or metadata.error is not None:
                return 0
            total = 0
            for partition in metadata.partitions:
                low, high = self._watcher.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10, cached=False
                )
                total += high - low
        except KafkaException:
            return 0  # a topic just created has no leader yet: nothing to count so far
        return total

    def caught_up(self) -> bool:
        """Has the app committed every message of its agency topics and its resolve topic?"""
        if self._watcher is None:
            self.count(self.topics.resolve)
        assert self._watcher is not None
        names = [self.agency_topic(a, e) for a in self.agencies for e in self.entities]
        partitions = [TopicPartition(name, p) for name in names for p in range(self.partitions)]
        partitions.append(TopicPartition(self.topics.resolve, 0))
        try:
            ends = {
                (tp.topic, tp.partition): self._watcher.get_watermark_offsets(
                    tp, timeout=10, cached=False
                )[1]
                for tp in partitions
            }
        except KafkaException:
            return False  # the resolve topic is not there until a worker created it
        group = Consumer(
            self.settings.client.librdkafka({"group.id": self.topics.stream_group})
        )
        try:
            committed = group.committed(partitions, timeout=10)
        finally:
            group.close()
        return all(
            max(tp.offset, 0) >= ends[(tp.topic, tp.partition)] for tp in committed
        )

    def committed(self, topic: str, partition: int = 0) -> int:
        """The offset the app's consumer group committed on ``topic``."""
        group = Consumer(
            self.settings.client.librdkafka({"group.id": self.topics.stream_group})
        )
        try:
            [committed] = group.committed([TopicPartition(topic, partition)],
                                          timeout=10)
            return max(committed.offset, 0)
        finally:
            group.close()

    def worker_log(self, index: int = 0) -> str:
        path = self.logs / f"{self.prefix}-worker-{index}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
