"""The resolve stage's recovery: rebuilding its state when a worker gets the resolve partition.

The resolver lives in memory. A worker handed the resolve partition (at start, or after a
rebalance, or after a processing error made its state untrustworthy) loads every message of
the resolve topic before the first offset it is handed, emitting nothing: from the newest
usable snapshot (``streams.snapshot``) plus the messages after it, else from the whole topic.
It reads with an aiokafka consumer of its own (no group, no commits), so faust's consumer and
its offsets are untouched. The scoring model in force at each offset comes from the model
topic and from the model-change markers met on the way (``streams.model_rollout``); the
stewards' decisions forwarded to the topic (``streams.stewardship``) are loaded with the
records, in topic order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient

from schemas.client_config import ClientConfig
from schemas.dead_letters import Rejected
from schemas.topics import TopicNames
from streams.decoding import EventDecoder
from streams.input_gaps import committed_offsets, read_range
from streams.model_rollout import marker_model
from streams.resolve import InvalidPersonRecord, Resolver, TrustRanks
from streams.resolve.model_file import DEFAULT_MODEL_FILE, ModelFile, ModelFileError
from streams.resolve_stage import (
    STEWARD_PREFIX,
    ResolveStage,
    is_model_change,
    is_steward_decision,
)
from streams.snapshot import (
    SnapshotError,
    SnapshotHeader,
    SnapshotPolicy,
    read_header,
    read_snapshot,
    snapshot_doubt,
    snapshot_files,
)

log = logging.getLogger("tipsync.streams")

# The resolver holds millions of small objects for as long as the worker lives. Python's full
# garbage collection walks all of them each time the heap grew by a quarter: a stall of
# seconds in the middle of the stream at 100 000 people, and longer with more. Every so many
# records resolve moves what is alive to the collector's permanent generation
# (``gc.freeze``), so later collections only walk what is newer. Records replaced or deleted
# are still freed (by reference counting; the resolver's data has no reference cycles).
FREEZE_EVERY_RECORDS = 20_000


def resolve_topic_id(bootstrap: str | ClientConfig, topics: TopicNames) -> str | None:
    """The resolve topic's id (a recreated topic has another), None if unknown."""
    admin = AdminClient(ClientConfig.of(bootstrap).librdkafka())
    name = topics.resolve
    try:
        description = admin.describe_topics(TopicCollection([name]))[name].result()
    except Exception as error:  # noqa: BLE001 - unknown: the snapshot is then not trusted
        log.warning("resolve: the id of %s could not be read (%s)", name, error)
        return None
    return str(description.topic_id)


def committed_offset(bootstrap: str | ClientConfig, group_id: str, topics: TopicNames
                     ) -> int | None:
    """The resolve partition's offset committed by the worker group, None if none: every
    message before it was resolved and its outputs delivered (faust commits only after its
    flush, which waits for them)."""
    partition = (topics.resolve, 0)
    return committed_offsets(bootstrap, group_id, [partition]).get(partition)


def model_at(offset: int, recorded: tuple[ModelFile, int] | None) -> ModelFile:
    """The model in force just before ``offset``, as far as the model topic tells."""
    if recorded is not None and recorded[1] < offset:
        return recorded[0]
    return DEFAULT_MODEL_FILE


class ResolveRecovery:
    def __init__(
        self, *, bootstrap: str | ClientConfig, topics: TopicNames, trust: TrustRanks,
        snapshot_policy: SnapshotPolicy, snapshot_dir: Path, decoder: EventDecoder,
        recorded_model: Callable[[], Awaitable[tuple[ModelFile, int] | None]],
    ) -> None:
        self._bootstrap = bootstrap
        self.topics = topics
        self.trust = trust
        self.snapshot_policy = snapshot_policy
        self.snapshot_dir = snapshot_dir
        self._decoder = decoder
        self._recorded_model = recorded_model

    async def rebuild(self, until_offset: int) -> tuple[ResolveStage, int | None]:
        """A resolve stage loaded with every message of the resolve topic before
        ``until_offset`` (the first offset this worker is handed), emitting nothing: from the
        newest usable snapshot plus the messages after it, else from the whole topic. With
        it, the number of messages read after the snapshot (or from the whole topic); None
        when there was nothing before ``until_offset``, so nothing was read."""
        started = time.perf_counter()
        # The model in force at ``until_offset``: the recorded one when it took effect before
        # (markers up to its offset are then already applied), else the default weights, and
        # every model-change marker met on the way switches it.
        recorded = await self._recorded_model()
        start, applied_until = DEFAULT_MODEL_FILE, -1
        if recorded is not None and recorded[1] < until_offset:
            start, applied_until = recorded
        if until_offset <= 0:
            stage = ResolveStage(lambda: Resolver(self.trust, start.model))
            stage.finish_loading()
            return stage, None
        log.warning("resolve: rebuilding from %s up to offset %d", self.topics.resolve,
                    until_offset)
        consumer = AIOKafkaConsumer(
            **ClientConfig.of(self._bootstrap).aiokafka(),
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
                topic_id = await asyncio.to_thread(resolve_topic_id, self._bootstrap,
                                                   self.topics)
                # from_state rebuilds the features and blocks (the saved edges and clusters
                # spare it any scoring): ~1.5 minutes at a million people, in a thread so
                # heartbeats and ingest go on meanwhile.
                snapshot = await asyncio.to_thread(
                    self._stage_from_snapshot, until_offset, recorded, topic_id, earliest
                )
            if snapshot is None:
                stage = ResolveStage(lambda: Resolver(self.trust, start.model))
                source = "the whole topic"
                # an explicit seek, never seek_to_beginning: aiokafka (0.14) lets the
                # "latest" reset its assign() started answer after the seek's "earliest" one
                # and takes it, so the rebuild read nothing and lost every record
                consumer.seek(partition, earliest)
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
        seconds = time.perf_counter() - started
        # (streams.snapshot.REBUILT_LINE reads this line back for the benchmark)
        log.warning("resolve: rebuilt from %d records in %.1f s (%s: %d messages read), "
                    "scoring model %s", len(stage.resolver.records), seconds, source, replayed,
                    stage.model_fingerprint)
        return stage, replayed

    async def read(self, from_offset: int, until_offset: int) -> list[ConsumerRecord]:
        """The messages of the resolve topic from ``from_offset`` up to (not including)
        ``until_offset``, in order (those faust did not hand over: ``ResolveHandler``)."""
        return await read_range(self._bootstrap, (self.topics.resolve, 0), from_offset,
                                until_offset)

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
                if record.value is None:  # a tombstone of `tipsync erase`
                    stage.load_erasure(record.key.decode())
                    continue
                if is_model_change(record.key):
                    if record.offset > applied_until:
                        with contextlib.suppress(ModelFileError, UnicodeDecodeError):
                            # (a bad marker went to the dead-letter topic when first seen)
                            await asyncio.to_thread(
                                stage.load_model_change, marker_model(self.topics, record)
                            )
                    continue
                try:
                    if is_steward_decision(record.key):
                        stage.load_decision(await self._decoder.steward_decision(
                            record.key[len(STEWARD_PREFIX):], record.value
                        ))
                    else:
                        stage.load(await self._decoder.resolve_event(record.key, record.value))
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

    def _stage_from_snapshot(
        self, until_offset: int, recorded: tuple[ModelFile, int] | None,
        topic_id: str | None, earliest: int,
    ) -> tuple[SnapshotHeader, ResolveStage] | None:
        """The stage of the newest snapshot nothing casts doubt on (``streams.snapshot``);
        None, after logging why each was passed over, when there is none."""
        for snapshot in snapshot_files(self.snapshot_dir):
            try:
                header = read_header(snapshot.path)
                model_file = model_at(header.offset, recorded)
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
