"""The faust app of tipsync: ingest and resolve, wired to Kafka (the thin I/O shell).

::

    tip.agency.<agency>.<entity>  --ingest-->  tip.reconciled.{case,report,organisation,location}
                                         \\->  tip.internal.resolve (1 partition, compacted)
                                                 --resolve-->  tip.reconciled.{person,link,
                                                               match_decision}
                                                               tip.internal.person-mapping
    (what neither stage can process)     -->  tip.dlq.ingest, tip.dlq.resolve

- **ingest** runs on every agency topic, parallel by partition. Its table ``ingest_held``
  (RocksDB through rocksdict, or memory; always with a changelog topic) holds, per source
  record, the newest accepted version and the last few event ids (``streams.ingest``).
- **resolve** runs on the single partition of ``tip.internal.resolve``; one worker owns it
  (``streams.resolve_stage`` explains versions and the rebuild after a restart).

faust's ``pattern=`` subscription silently subscribes to nothing (faust-streaming issue #62,
``# XXX pattern does not work`` in its aiokafka driver), so the app finds the agency topics
itself: at start and then every ``discovery_interval_seconds`` it lists the broker's topics,
and adds the new ones matching the agency pattern to the ingest subscription; a new agency
needs no redeploy, only its topics (``tipsync topics create``).

Values travel as raw bytes and are decoded here with the contract's deserializer, so bytes
that do not decode become dead letters instead of crashing an agent. Delivery is
at-least-once: faust flushes the producer before it commits offsets, and everything
downstream is idempotent (ingest drops replays, resolve re-emits the same versions, the sink
keeps the highest golden_version). faust's exactly_once mode is not used.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient
from faust.types import TP
from faust.types.stores import StoreT
from mode.utils.times import want_seconds

from schemas.agencies import load_agencies
from schemas.config import Settings, load_settings, metrics_port
from schemas.dead_letters import DeadLetter, Rejected, dead_letter_headers, processing_error
from schemas.entities import RECONCILED_OUTPUTS
from schemas.errors import RegistryUnavailableError, SerializationError, WireFormatError
from schemas.registry import SchemaRegistry
from schemas.serde import AvroDeserializer, AvroSerializer
from schemas.topics import (
    ROOT,
    TopicNames,
    TopicSettings,
    TopicSpec,
    compacted_config,
    create_topics,
)
from streams.ingest import (
    RESOLVED_ENTITIES,
    AgencyEvent,
    Held,
    Verdict,
    check_event,
    golden_entity,
    judge,
    remember,
    split_held_key,
)
from streams.metrics import DEFAULT_METRICS_PORT, StreamMetrics
from streams.output_producer import OutputProducer
from streams.resolve import InvalidPersonRecord, Resolver
from streams.resolve.model_file import DEFAULT_MODEL_FILE, ModelFile, ModelFileError, dumps, loads
from streams.resolve_stage import (
    MAPPING,
    Output,
    ResolveStage,
    is_model_change,
    load_model,
    model_change_key,
    trust_ranks,
)
from streams.snapshot import (
    SnapshotError,
    SnapshotHeader,
    SnapshotPolicy,
    read_header,
    read_snapshot,
    snapshot_directory,
    snapshot_doubt,
    snapshot_files,
    write_snapshot,
)

log = logging.getLogger("tipsync.streams")

REGISTRY_RETRY_SECONDS = 5.0
# The resolver holds millions of small objects for as long as the worker lives. Python's full
# garbage collection walks all of them each time the heap grew by a quarter: a stall of
# seconds in the middle of the stream at 100 000 people, and longer with more. Every so many
# records resolve moves what is alive to the collector's permanent generation
# (``gc.freeze``), so later collections only walk what is newer. Records replaced or deleted
# are still freed (by reference counting; the resolver's data has no reference cycles).
FREEZE_EVERY_RECORDS = 20_000


@dataclass(frozen=True)
class StreamOptions:
    """How one worker runs. ``topic_root`` replaces ``tip`` in every topic name (tests use a
    root of their own so parallel runs never share topics or consumer groups)."""

    topic_root: str = ROOT
    app_id: str | None = None  # default '<root>.internal.stream' (also the consumer group)
    store: str = "rocksdb"  # rocksdb | memory
    worker_index: int = 0
    web_port: int | None = None  # None: faust's web server stays off
    metrics_port: int | None = DEFAULT_METRICS_PORT  # None: no metrics endpoint
    discovery_interval_seconds: float = 30.0
    partitions: int | None = None  # of agency topics; None: as the broker has them
    loglevel: str = "warning"
    # A scoring model file (`tipsync model fit`); None: the reasoned default weights.
    model_path: str | None = None
    # Resolve snapshots (streams.snapshot): every so many resolve messages or seconds;
    # TIPSYNC_RESOLVE_SNAPSHOT_RECORDS=0 turns them off (every restart replays the topic).
    snapshot_every_records: int = SnapshotPolicy.every_records
    snapshot_every_seconds: float = SnapshotPolicy.every_seconds

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.topic_root)

    @property
    def group_id(self) -> str:
        return self.app_id or self.topics.stream_group

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> (
        StreamOptions
    ):
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get("TIPSYNC_STREAM_METRICS_PORT", "").strip():
            values["metrics_port"] = metrics_port(
                "TIPSYNC_STREAM_METRICS_PORT", DEFAULT_METRICS_PORT, environ=env
            )
        if env.get("TIPSYNC_RESOLVE_MODEL"):
            values["model_path"] = env["TIPSYNC_RESOLVE_MODEL"]
        for name, option in (("TIPSYNC_RESOLVE_SNAPSHOT_RECORDS", "snapshot_every_records"),
                             ("TIPSYNC_RESOLVE_SNAPSHOT_SECONDS", "snapshot_every_seconds")):
            text = env.get(name)
            if text:
                if not text.isdigit():
                    raise ValueError(
                        f"{name}='{text}' is not a whole number; set e.g. 100000 records or "
                        "900 seconds (TIPSYNC_RESOLVE_SNAPSHOT_RECORDS=0 turns snapshots off)"
                    )
                values[option] = int(text)
        values.update(overrides)
        return cls(**values)


def agency_topics_on_broker(bootstrap: str, topics: TopicNames) -> dict[str, int]:
    """Agency topic -> partition count, for the topics the broker has now."""
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=15)
    return {
        name: len(topic.partitions)
        for name, topic in metadata.topics.items()
        if topics.parse_agency(name) is not None
    }


@dataclass(frozen=True)
class IngestRoute:
    """What ingest needs to know about one agency topic, worked out at its first message:
    its agency and entity (a regular expression match) and its counters (a label lookup
    costs ~8 us), then reused for every message of the topic."""

    agency_id: str
    entity: str
    events_in: Any
    replays_dropped: Any
    stale_dropped: Any
    events_out: Any


class StreamApp:
    """The faust app with its two agents, its table, its topics and its counters."""

    def __init__(self, options: StreamOptions, settings: Settings | None = None) -> None:
        self.options = options
        self.settings = settings or load_settings()
        self.topics = options.topics
        self.metrics = StreamMetrics()
        self.registry = SchemaRegistry(self.settings.registry_url)
        self.deserializer = AvroDeserializer(self.registry)
        self._serializers: dict[str, AvroSerializer] = {}
        self._ingest_routes: dict[str, IngestRoute] = {}
        # resolve's per-output topic, counter and serializer, and labelled counters, looked up
        # once: a label lookup per message costs more than the increment it serves
        self._output_routes: dict[str, tuple[str, Any, AvroSerializer | None]] = {}
        self._labelled: dict[tuple[str, str], Any] = {}
        self._outputs_ready = asyncio.Event()  # agents wait until their topics exist
        self.trust = trust_ranks(load_agencies())
        self.stage: ResolveStage | None = None
        # Read at start, so a bad model file stops the worker before it consumes anything.
        self.model_file = load_model(options.model_path)
        log.warning("resolve: scoring model %s (%s)", self.model_file.fingerprint,
                    options.model_path or "reasoned default weights")
        self._unfrozen_records = 0  # resolved since the last gc.freeze
        self.data_dir = (
            self.settings.home / "streams" / options.group_id / f"worker-{options.worker_index}"
        )
        self.snapshot_policy = SnapshotPolicy(options.snapshot_every_records,
                                              options.snapshot_every_seconds)
        self.snapshot_dir = snapshot_directory(self.data_dir)
        self._since_snapshot = 0  # resolve messages the newest snapshot does not cover
        self._snapshot_clock = time.monotonic()
        self._snapshot_write_seconds = 0.0

        found = agency_topics_on_broker(self.settings.kafka_bootstrap, self.topics)
        self.partitions = options.partitions or _common_partition_count(found)
        self.subscribed = sorted(n for n, count in found.items() if count == self.partitions)
        self._warn_misfits(found)

        self.app = faust.App(
            options.group_id,
            broker=[f"kafka://{host}" for host in self.settings.kafka_bootstrap.split(",")],
            store="memory://" if options.store == "memory" else "rocksdb://",
            datadir=str(self.data_dir),
            web_enabled=options.web_port is not None,
            web_port=options.web_port or 6066,
            web_host="127.0.0.1",
            topic_partitions=self.partitions,
            topic_replication_factor=TopicSettings.from_environment().replication_factor,
            processing_guarantee="at_least_once",
            key_serializer="raw",
            value_serializer="raw",
            consumer_auto_offset_reset="earliest",
            producer_linger_ms=20,
            producer_max_batch_size=1_048_576,
            broker_commit_every=10_000,
            # A worker that dies (kill -9, a lost machine) holds its partitions until its
            # session times out: 10 s instead of faust's 60 s before another takes over.
            broker_session_timeout=10.0,
            broker_heartbeat_interval=3.0,
            broker_max_poll_records=2_000,
            # aiokafka rejoins the group when its metadata of the subscribed topics changes.
            # A topic added by discovery whose metadata arrived before the new subscription
            # took effect is otherwise noticed only at the next periodic refresh, 5 minutes
            # by default (seen in tests/integration/test_stream_workers.py: a new agency's
            # events waited past the test's 2 minutes in about one run of three).
            consumer_metadata_max_age_ms=30_000,
            stream_buffer_maxsize=16_384,
            autodiscover=False,
        )
        self._declare_topics()
        self._changelog_topic = self.held.changelog_topic.get_topic_name()
        self.output = OutputProducer(self.settings.kafka_bootstrap, self._output_failed)
        # faust flushes its producer before it commits offsets, on a rebalance and when it
        # stops: the outputs given to ours must be acknowledged by then too.
        faust_producer = self.app.producer
        faust_flush = faust_producer.flush

        async def flush_both() -> None:
            await faust_flush()
            await self.output.flush()

        faust_producer.flush = flush_both  # type: ignore[method-assign]
        self._declare_agents()
        # faust waits 45 s after a subscription change before it resubscribes (to gather
        # changes made during one rebalance); 5 s is plenty for topics found by discovery.
        self.app.topics._resubscribe_sleep_lock_seconds = 5.0  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ topics

    def _warn_misfits(self, found: Mapping[str, int]) -> None:
        for name, count in sorted(found.items()):
            if count != self.partitions:
                log.error(
                    "agency topic %s has %d partitions, the other agency topics %d; ingest "
                    "cannot keep its table partitioned like it, so it skips the topic: "
                    "recreate it with %d partitions (TIPSYNC_PARTITIONS)",
                    name, count, self.partitions, self.partitions,
                )

    def _declare_topics(self) -> None:
        app, topics = self.app, self.topics
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        # ``topics`` is one list shared with every clone faust makes for the agent, so
        # topics found later are added to it in place.
        self.agency_channel = app.topic(**raw)
        self.agency_channel.topics = list(self.subscribed)  # a list, to grow in place
        self.resolve_topic = app.topic(
            topics.resolve, partitions=1, internal=True, compacting=True,
            config=compacted_config(), **raw,
        )
        self.output_topics = {
            output: app.topic(
                topics.reconciled(output), internal=True, compacting=True,
                config=compacted_config(), **raw,
            )
            for output in RECONCILED_OUTPUTS
        }
        self.output_topics[MAPPING] = app.topic(
            topics.person_mapping, internal=True, compacting=True,
            config=compacted_config(), **raw,
        )
        self.model_topic = app.topic(
            topics.resolve_model, partitions=1, internal=True, compacting=True,
            config=compacted_config(), **raw,
        )
        self.dlq_topics = {
            stage: app.topic(
                topics.dlq(stage), internal=True, deleting=True,
                # the same retention `tipsync topics create` gives them (TIPSYNC_DLQ_RETENTION_MS)
                retention=TopicSettings.from_environment().dlq_retention_ms / 1000,
                **raw,
            )
            for stage in ("ingest", "resolve")
        }
        self.held = app.Table(
            "ingest_held", partitions=self.partitions,
            schema=faust.Schema(key_serializer="raw", value_serializer="json"),
        )

    def serializer(self, output: str) -> AvroSerializer:
        serializer = self._serializers.get(output)
        if serializer is None:
            serializer = AvroSerializer(self.registry, f"reconciled.{output}")
            self._serializers[output] = serializer
        return serializer

    # ------------------------------------------------------------------ agents

    def _declare_agents(self) -> None:
        app = self.app

        @app.task
        async def declare_outputs() -> None:
            for topic in (*self.output_topics.values(), *self.dlq_topics.values()):
                await topic.maybe_declare()
            # Fail at start, not at the first record, when the schemas are not registered.
            for output in RECONCILED_OUTPUTS:
                await asyncio.to_thread(self.serializer, output)
            self._outputs_ready.set()

        @app.task
        async def roll_out_model() -> None:
            await self._outputs_ready.wait()
            await self.roll_out_model()

        @app.timer(interval=self.options.discovery_interval_seconds)
        async def discover_agency_topics() -> None:
            try:
                await self.discover()
            except Exception as error:  # noqa: BLE001 - a failed look must not stop the app
                log.error("looking for new agency topics failed (%s); trying again in %.0f s",
                          error, self.options.discovery_interval_seconds)

        @app.agent(self.agency_channel, name="ingest")
        async def ingest(stream: faust.StreamT) -> None:
            async for event in stream.events():
                await self.ingest_one(event.message)

        @app.agent(self.resolve_topic, name="resolve", concurrency=1)
        async def resolve(stream: faust.StreamT) -> None:
            async for event in stream.events():
                await self.resolve_one(event.message)

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]
        async def forget_resolver(sender: Any, revoked: set[Any], **_: Any) -> None:
            # Another worker may take the resolve partition and move on: rebuild when it
            # comes back rather than trust a state that may be behind.
            if any(tp.topic == self.topics.resolve for tp in revoked):
                self.stage = None

        if self.options.metrics_port is not None:
            port = self.options.metrics_port + self.options.worker_index

            @app.task
            async def serve_metrics() -> None:
                self.metrics.serve(port)

        self.ingest_agent, self.resolve_agent = ingest, resolve

    async def discover(self) -> list[str]:
        """Subscribe ingest to agency topics created since the last look; returns them."""
        found = await asyncio.to_thread(
            agency_topics_on_broker, self.settings.kafka_bootstrap, self.topics
        )
        new = sorted(
            name for name, count in found.items()
            if count == self.partitions and name not in self.agency_channel.topics
        )
        if new:
            log.warning("ingest subscribes to new agency topics: %s", ", ".join(new))
            self.agency_channel.topics.extend(new)  # type: ignore[attr-defined]
            # the conductor resubscribes on its next turn
            self.app.topics._flag_changes()  # type: ignore[attr-defined]
        return new

    # ------------------------------------------------------------------ sending

    async def _send(
        self, topic: str, key: bytes | None, value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Hand one message to the output producer (``streams.output_producer``: librdkafka,
        not faust's per-message bookkeeping over aiokafka). faust's flush before every offset
        commit waits for it too, so an input's offset is never committed before its outputs
        are acknowledged; a delivery that still fails after the producer's retries stops the
        worker (uncommitted inputs are then processed again by whoever takes over)."""
        await self.output.send(topic, key, value, headers=headers)

    def _output_failed(self, error: str) -> None:
        log.critical("a message could not be delivered to Kafka (%s); stopping", error)
        asyncio.ensure_future(self.app.crash(RuntimeError(error)))

    # ------------------------------------------------------------------ ingest

    async def ingest_one(self, message: Any) -> None:
        """Judge one agency event and pass it on; what cannot be processed, whatever the
        reason, becomes a dead letter and the stream goes on with the next message."""
        if not self._outputs_ready.is_set():
            await self._outputs_ready.wait()
        try:
            await self._ingest(message)
        except Rejected as rejected:
            await self._dead_letter("ingest", message, rejected.dead_letter)
        except Exception as error:  # noqa: BLE001 - faust has acknowledged the message already
            # Left to faust, the exception would kill the agent and the event would be lost
            # (faust acknowledges a message before the agent is done with it). Its text may
            # quote personal data: the dead letter and the log name only its type and where.
            await self._dead_letter(
                "ingest", message, processing_error("ingest", error, message.topic)
            )

    async def _ingest(self, message: Any) -> None:
        counters = self._ingest_routes.get(message.topic) or self._route(message.topic)
        agency_id, entity = counters.agency_id, counters.entity
        counters.events_in.inc()
        event = await self._decode(message.value, agency_id, entity, message.key)
        key = event.held_key
        held = Held.from_json(self.held.data.get(key))
        verdict = judge(held, event.event_id, event.source_version)
        if verdict is Verdict.REPLAY:  # its id is already remembered
            counters.replays_dropped.inc()
            return
        if verdict is Verdict.STALE:
            await self._hold(key, remember(held, event.event_id, event.source_version), message)
            counters.stale_dropped.inc()
            return
        if entity in RESOLVED_ENTITIES:
            topic, output_key, data = self.topics.resolve, key.encode(), message.value
        else:
            golden, value = golden_entity(event)
            try:
                data = None if value is None else self.serializer(entity)(value)
            except SerializationError as error:
                raise Rejected("invalid_envelope", str(error)) from None
            topic, output_key = self.topics.reconciled(entity), golden.encode()
        # The table moves forward only once the output is ready: an event that failed on the
        # way is not remembered, so publishing it again once the cause is fixed is no replay.
        await self._hold(key, remember(held, event.event_id, event.source_version), message)
        await self._send(topic, output_key, data)
        counters.events_out.inc()

    async def _hold(self, key: str, held: Held, message: Any) -> None:
        """Write ``held`` to the table: its store, and its changelog partition (the input's).

        What ``self.held[key] = ...`` does, without faust's per-message bookkeeping around
        the changelog message (``Topic.send_soon``, a FutureMessage and its callbacks: a
        fifth of ingest's CPU time): the store write, the changelog message through the
        producer, and, once Kafka has it, its offset noted in the store, so a restarted
        worker reads back only the changelog it does not have yet (faust's
        ``_on_changelog_sent``). Keys and values are JSON, as faust's table writes them (the
        table's serializers are JSON whatever its schema says), so changelogs written before
        and after read back the same.
        """
        value = held.to_json()
        self.held.data[key] = value  # RocksDB: the store takes the partition from the input
        await self.output.send(
            self._changelog_topic, orjson.dumps(key), orjson.dumps(value), message.partition,
            on_delivered=self._changelog_delivered,
        )

    def _changelog_delivered(self, topic: str, partition: int, offset: int) -> None:
        # the table's store (faust types ``data`` as a plain mapping)
        store = cast(StoreT, self.held.data)
        store.set_persisted_offset(TP(topic, partition), offset)

    def _route(self, topic: str) -> IngestRoute:
        parsed = self.topics.parse_agency(topic)
        assert parsed is not None, f"ingest got a message of {topic}"
        agency_id, entity = parsed
        metrics = self.metrics
        route = IngestRoute(agency_id, entity, *(
            metric.labels(agency_id, entity) for metric in (
                metrics.events_in, metrics.replays_dropped, metrics.stale_dropped,
                metrics.events_out,
            )
        ))
        self._ingest_routes[topic] = route
        return route

    async def _decode(
        self, value: bytes | None, agency_id: str, entity: str, key: bytes | None
    ) -> AgencyEvent:
        while True:
            try:
                decoded = self.deserializer(value, expected=entity)  # type: ignore[arg-type]
                return check_event(agency_id, entity, key, decoded.record)
            except WireFormatError as error:
                raise Rejected(error.reason, str(error)) from None
            except RegistryUnavailableError as error:
                # Not the message's fault: wait for the registry rather than reject good data.
                log.error("%s; retrying in %.0f s", error, REGISTRY_RETRY_SECONDS)
                await asyncio.sleep(REGISTRY_RETRY_SECONDS)

    async def _dead_letter(self, stage: str, message: Any, letter: DeadLetter) -> None:
        headers = dead_letter_headers(
            letter, stage, message.topic, message.partition, message.offset
        )
        await self._send(self.topics.dlq(stage), message.key, message.value, headers)
        self.metrics.dead_letters.labels(stage, letter.reason).inc()
        log.log(
            logging.ERROR if letter.reason == "processing_error" else logging.WARNING,
            "dead letter %s[%d]@%d (%s): %s",
            message.topic, message.partition, message.offset, letter.reason, letter.detail,
        )

    # ------------------------------------------------------------------ resolve

    async def _resolve_event(self, key: bytes, value: bytes | None) -> AgencyEvent:
        entity, agency_id, _ = split_held_key(key.decode())
        source_key = key.decode().split(":", 1)[1].encode()
        return await self._decode(value, agency_id, entity, source_key)

    async def resolve_one(self, message: Any) -> None:
        if not self._outputs_ready.is_set():
            await self._outputs_ready.wait()
        if self.stage is None:
            self.stage = await self.rebuild(until_offset=message.offset)
            self._unfrozen_records = 0
            gc.freeze()
        if self.snapshot_policy.due(self._since_snapshot,
                                    time.monotonic() - self._snapshot_clock,
                                    self._snapshot_write_seconds):
            # Between two messages: the stage holds exactly the messages before this one.
            await self.write_snapshot(self.stage, message.offset)
        self._since_snapshot += 1
        self._unfrozen_records += 1
        if self._unfrozen_records >= FREEZE_EVERY_RECORDS:
            self._unfrozen_records = 0
            gc.freeze()
        if is_model_change(message.key):
            await self._change_model(message)
            return
        started = time.perf_counter()
        try:
            event = await self._resolve_event(message.key, message.value)
            outputs = self.stage.apply(event, golden_version=message.offset)
        except Rejected as rejected:
            await self._dead_letter("resolve", message, rejected.dead_letter)
            return
        except InvalidPersonRecord as error:
            await self._dead_letter("resolve", message, DeadLetter("unresolvable", str(error)))
            return
        except Exception as error:  # noqa: BLE001 - faust has acknowledged the message already
            # The resolver may have changed part of its clusters before it raised, so its
            # state is no longer to be trusted: forget it, and the next message rebuilds it
            # from the resolve topic (``rebuild``). The dead letter names only the exception's
            # type and where (its text may quote personal data).
            self.stage = None
            await self._dead_letter(
                "resolve", message, processing_error("resolve", error, message.topic)
            )
            return
        self._resolved_counter(event.entity).inc()
        for output in outputs:
            await self._publish(output)
        self.metrics.resolve_seconds.observe(time.perf_counter() - started)

    def _resolved_counter(self, entity: str) -> Any:
        counter = self._labelled.get(("resolved", entity))
        if counter is None:
            counter = self._labelled[("resolved", entity)] = self.metrics.resolved.labels(entity)
        return counter

    async def _publish(self, output: Output) -> None:
        kind = output.kind
        route = self._output_routes.get(kind)
        if route is None:
            route = self._output_routes[kind] = (
                self.output_topics[kind].get_topic_name(),
                self.metrics.resolve_outputs.labels(kind),
                None if kind == MAPPING else self.serializer(kind),
            )
        topic, counter, serialize = route
        value = output.value
        if value is None:
            data = None
        elif serialize is None:
            data = json.dumps(value).encode()
        else:
            data = serialize(value)
        await self._send(topic, output.key.encode(), data)
        counter.inc()
        if value is None:
            return
        if kind == "match_decision":
            decision = value["decision"]
            decisions = self._labelled.get(("decision", decision))
            if decisions is None:
                decisions = self._labelled[("decision", decision)] = (
                    self.metrics.match_decisions.labels(decision)
                )
            decisions.inc()
        elif kind == "person" and value.get("merged_into"):
            self.metrics.merges.inc()

    async def rebuild(self, until_offset: int) -> ResolveStage:
        """A resolve stage loaded with every message of the resolve topic before
        ``until_offset`` (the first offset this worker is handed), emitting nothing: from the
        newest usable snapshot plus the messages after it, else from the whole topic."""
        started = time.perf_counter()
        # The model in force at ``until_offset``: the recorded one when it took effect before
        # (markers up to its offset are then already applied), else the default weights, and
        # every model-change marker met on the way switches it.
        recorded = await self.recorded_model()
        start, applied_until = DEFAULT_MODEL_FILE, -1
        if recorded is not None and recorded[1] < until_offset:
            start, applied_until = recorded
        if until_offset <= 0:
            stage = ResolveStage(lambda: Resolver(self.trust, start.model))
            stage.finish_loading()
            self._since_snapshot = 0
            return stage
        log.warning("resolve: rebuilding from %s up to offset %d", self.topics.resolve,
                    until_offset)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        partition = TopicPartition(self.topics.resolve, 0)
        try:
            consumer.assign([partition])
            earliest = (await consumer.beginning_offsets([partition]))[partition]
            snapshot = None
            if self.snapshot_policy.enabled:
                topic_id = await asyncio.to_thread(self._resolve_topic_id)
                # from_state rebuilds the features and blocks (the saved edges and clusters
                # spare it any scoring): ~1.5 minutes at a million people, in a thread so
                # heartbeats and ingest go on meanwhile.
                snapshot = await asyncio.to_thread(
                    self._stage_from_snapshot, until_offset, recorded, topic_id, earliest
                )
            if snapshot is None:
                stage = ResolveStage(lambda: Resolver(self.trust, start.model))
                source = "the whole topic"
                await consumer.seek_to_beginning(partition)
            else:
                header, stage = snapshot
                source = f"snapshot at offset {header.offset} plus the topic after it"
                # every marker after the snapshot is replayed, in order: the snapshot holds
                # the model in force at its offset
                applied_until = header.offset - 1
                consumer.seek(partition, header.offset)
            replayed = await self._replay(consumer, partition, stage, until_offset,
                                          applied_until)
        finally:
            await consumer.stop()
        stage.finish_loading()
        self._since_snapshot, self._snapshot_clock = replayed, time.monotonic()
        seconds = time.perf_counter() - started
        log.warning("resolve: rebuilt from %d records in %.1f s (%s: %d messages read), "
                    "scoring model %s", len(stage.resolver.records), seconds, source, replayed,
                    stage.model_fingerprint)
        return stage

    async def _replay(self, consumer: AIOKafkaConsumer, partition: TopicPartition,
                      stage: ResolveStage, until_offset: int, applied_until: int) -> int:
        """Load the messages from the consumer's position up to ``until_offset`` into the
        stage, emitting nothing; model-change markers after ``applied_until`` switch its
        model. Returns the number of messages read."""
        replayed = loaded = 0
        while await consumer.position(partition) < until_offset:
            batch = await consumer.getmany(partition, timeout_ms=1000, max_records=5000)
            for record in batch.get(partition, []):
                if record.offset >= until_offset:
                    break
                replayed += 1
                if is_model_change(record.key):
                    if record.offset > applied_until:
                        with contextlib.suppress(ModelFileError, UnicodeDecodeError):
                            # (a bad marker went to the dead-letter topic when first seen)
                            await asyncio.to_thread(
                                stage.load_model_change, self._marker_model(record)
                            )
                    continue
                try:
                    stage.load(await self._resolve_event(record.key, record.value))
                    loaded += 1
                except (Rejected, InvalidPersonRecord):
                    continue  # it went to the dead-letter topic when it was first seen
                except Exception as error:  # noqa: BLE001
                    # A record that raised when it was first seen went to the dead-letter
                    # topic as a processing_error and raises here again: skip it rather
                    # than fail every rebuild (the resolver keeps what it did before).
                    log.error("resolve: rebuild skipped %s[0]@%d (%s)", self.topics.resolve,
                              record.offset, type(error).__name__)
                    continue
                if loaded % FREEZE_EVERY_RECORDS == 0:
                    gc.freeze()
        return replayed

    # ------------------------------------------------------------------ snapshots

    def _resolve_topic_id(self) -> str | None:
        """The resolve topic's id (a recreated topic has another), None if unknown."""
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap})
        name = self.topics.resolve
        try:
            description = admin.describe_topics(TopicCollection([name]))[name].result()
        except Exception as error:  # noqa: BLE001 - unknown: the snapshot is then not trusted
            log.warning("resolve: the id of %s could not be read (%s)", name, error)
            return None
        return str(description.topic_id)

    def _model_at(self, offset: int, recorded: tuple[ModelFile, int] | None) -> ModelFile:
        """The model in force just before ``offset``, as far as the model topic tells."""
        if recorded is not None and recorded[1] < offset:
            return recorded[0]
        return DEFAULT_MODEL_FILE

    def _stage_from_snapshot(
        self, until_offset: int, recorded: tuple[ModelFile, int] | None,
        topic_id: str | None, earliest: int,
    ) -> tuple[SnapshotHeader, ResolveStage] | None:
        """The stage of the newest snapshot nothing casts doubt on (``streams.snapshot``);
        None, after logging why each was passed over, when there is none."""
        for snapshot in snapshot_files(self.snapshot_dir):
            try:
                header = read_header(snapshot.path)
                model_file = self._model_at(header.offset, recorded)
                doubt = snapshot_doubt(header, until_offset, model_file.fingerprint, topic_id,
                                       earliest)
                if doubt is not None:
                    log.warning("resolve: snapshot %s not used: %s", snapshot.path, doubt)
                    continue
                return read_snapshot(snapshot.path, functools.partial(
                    Resolver.from_state, trust=self.trust, model=model_file.model
                ))
            except SnapshotError as error:
                log.warning("resolve: %s", error)
        return None

    async def write_snapshot(self, stage: ResolveStage, offset: int) -> None:
        """Write the stage, covering the resolve topic before ``offset``, to the data dir.
        Resolve waits meanwhile (its state must not change while written); the writing runs
        in a thread so heartbeats and ingest go on. A failure is logged, never fatal."""
        started = time.perf_counter()
        try:
            topic_id = await asyncio.to_thread(self._resolve_topic_id)
            written = await asyncio.to_thread(
                write_snapshot, self.snapshot_dir, stage, offset, topic_id
            )
        except OSError as error:
            log.error("resolve: the snapshot at offset %d could not be written to %s (%s); "
                      "resolve goes on, but a restart replays more of %s: free disk space or "
                      "fix the folder's permissions", offset, self.snapshot_dir, error,
                      self.topics.resolve)
            written = None
        seconds = time.perf_counter() - started
        self._since_snapshot, self._snapshot_clock = 0, time.monotonic()
        self._snapshot_write_seconds = seconds
        if written is not None:
            log.warning("resolve: snapshot of %d records at offset %d written to %s in %.1f s",
                        len(stage.resolver.records), offset, written.path, seconds)

    # ------------------------------------------------------------------ scoring model

    async def recorded_model(self) -> tuple[ModelFile, int] | None:
        """The model the published view was made with and the resolve offset it took effect
        at, as recorded on the model topic; None before any model change."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap, enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        partition = TopicPartition(self.topics.resolve_model, 0)
        latest: bytes | None = None
        try:
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            end = (await consumer.end_offsets([partition]))[partition]
            while await consumer.position(partition) < end:
                batch = await consumer.getmany(partition, timeout_ms=1000)
                for record in batch.get(partition, []):
                    latest = record.value if record.value is not None else latest
        finally:
            await consumer.stop()
        if latest is None:
            return None
        recorded = json.loads(latest)
        model_file = loads(json.dumps(recorded["model"]), self.topics.resolve_model)
        return model_file, int(recorded["since_offset"])

    async def roll_out_model(self) -> None:
        """When the configured model is not the one the published view was made with, append
        a model-change marker to the resolve topic: at its offset resolve re-resolves every
        record held and publishes the differences (``ResolveStage.apply_model_change``)."""
        recorded = await self.recorded_model()
        in_force = DEFAULT_MODEL_FILE if recorded is None else recorded[0]
        if in_force.fingerprint == self.model_file.fingerprint:
            return
        log.warning(
            "resolve: the published view was made with scoring model %s; rolling out %s "
            "(every person record held is resolved again once, and what changes is published)",
            in_force.fingerprint, self.model_file.fingerprint,
        )
        await self._send(self.topics.resolve, model_change_key(self.model_file).encode(),
                         dumps(self.model_file).encode())

    def _marker_model(self, message: Any) -> ModelFile:
        where = f"model-change marker {self.topics.resolve}[0]@{message.offset}"
        return loads((message.value or b"").decode(), where)

    async def _change_model(self, message: Any) -> None:
        assert self.stage is not None
        try:
            model_file = self._marker_model(message)
        except (ModelFileError, UnicodeDecodeError) as error:
            await self._dead_letter("resolve", message, DeadLetter("unresolvable", str(error)))
            return
        stage = self.stage  # the partition may be revoked (stage forgotten) meanwhile
        before = stage.model_fingerprint
        started = time.perf_counter()
        # Every record is indexed and scored again: seconds to minutes. In a thread, so the
        # event loop keeps the worker's heartbeats and ingest going meanwhile.
        outputs = await asyncio.to_thread(
            stage.apply_model_change, model_file, golden_version=message.offset
        )
        gc.freeze()
        for output in outputs:
            await self._publish(output)
        record = {"model": model_file.to_document(), "since_offset": message.offset}
        await self._send(self.topics.resolve_model, b"model", json.dumps(record).encode())
        log.warning(
            "resolve: scoring model %s replaced %s at offset %d: %d records re-resolved in "
            "%.1f s, %d outputs published", model_file.fingerprint, before, message.offset,
            len(stage.resolver.records), time.perf_counter() - started, len(outputs),
        )


def _common_partition_count(found: Mapping[str, int]) -> int:
    if not found:
        return TopicSettings.from_environment().partitions
    counts: dict[int, int] = {}
    for count in found.values():
        counts[count] = counts.get(count, 0) + 1
    return max(counts, key=lambda count: (counts[count], count))


def create_app(options: StreamOptions | None = None, settings: Settings | None = None) -> (
    StreamApp
):
    """The stream app for one worker process (``tipsync stream`` runs it)."""
    return StreamApp(options or StreamOptions.from_environment(), settings)


# How long a worker may take to stop after SIGTERM / SIGINT before it exits hard. Faust's
# shutdown now and then waits forever on one of its own threads (seen in
# tests/integration/test_stream_workers.py, before and after our changes); a hard exit then
# is safe: processing is at-least-once, so events not yet committed are processed again on
# restart and the ingest table drops them as replays.
STOP_GRACE_SECONDS = 20.0


class _Worker(faust.Worker):
    def _on_sigint(self) -> None:
        self._exit_hard_after_grace("SIGINT")
        super()._on_sigint()

    def _on_sigterm(self) -> None:
        self._exit_hard_after_grace("SIGTERM")
        super()._on_sigterm()

    @staticmethod
    def _exit_hard_after_grace(signal_name: str) -> None:
        def exit_hard() -> None:
            log.warning(
                "the stream worker did not stop within %.0f s of %s; exiting now (uncommitted "
                "events are processed again on restart and dropped as replays)",
                STOP_GRACE_SECONDS, signal_name,
            )
            logging.shutdown()
            os._exit(0)

        timer = threading.Timer(STOP_GRACE_SECONDS, exit_hard)
        timer.daemon = True
        timer.start()

    def _setup_logging(self) -> None:
        super()._setup_logging()
        # mode leaves the root logger at DEBUG and filters in the handler, so every debug
        # call of aiokafka and faust builds a record first: ~15% of ingest's time.
        level = self.loglevel or logging.WARNING
        logging.getLogger().setLevel(level.upper() if isinstance(level, str) else level)


def ensure_internal_topics(stream_app: StreamApp, timeout: float = 60.0) -> None:
    """Create the topics faust would declare (table changelog, resolve, outputs, dead letters)
    and wait until the broker's metadata shows them, before the worker starts.

    Left to faust on a fresh broker, the changelog topic is created while the worker already
    consumes, the worker's metadata still says it has 0 partitions for minutes, and the
    ingest agent crashes with PartitionsMismatch on the events it was processing — which faust
    has already acknowledged, so they never reached the store (found by `tipsync bench e2e`).
    """
    replication = TopicSettings.from_environment().replication_factor
    plan = []
    for topic in (stream_app.held.changelog_topic, stream_app.resolve_topic,
                  stream_app.model_topic,
                  *stream_app.output_topics.values(), *stream_app.dlq_topics.values()):
        config = dict(compacted_config()) if topic.compacting else {}
        if topic.retention is not None and not topic.compacting:
            config["retention.ms"] = str(int(want_seconds(topic.retention) * 1000))
        config.update({key: str(value) for key, value in (topic.config or {}).items()})
        plan.append(TopicSpec(topic.get_topic_name(), topic.partitions or stream_app.partitions,
                              replication, config))
    bootstrap = stream_app.settings.kafka_bootstrap
    create_topics(bootstrap, plan)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=10).topics
        if all(spec.name in metadata and len(metadata[spec.name].partitions) == spec.partitions
               for spec in plan):
            return
        time.sleep(0.5)
    raise RuntimeError(
        f"the stream app's internal topics did not appear on {bootstrap} within {timeout:.0f}s:"
        f" {', '.join(sorted(spec.name for spec in plan))}"
    )


def run_worker(stream_app: StreamApp) -> None:
    """Run one faust worker until SIGINT or SIGTERM (then it stops cleanly and returns)."""
    stream_app.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_internal_topics(stream_app)
    # faust polls Kafka in a thread of its own; with the default 5 ms switch interval the
    # event loop waits up to 5 ms for the GIL after each socket write to the broker.
    sys.setswitchinterval(0.0005)
    worker = _Worker(stream_app.app, loglevel=stream_app.options.loglevel, quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise
