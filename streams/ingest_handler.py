"""Ingest's handling of one agency message: decode, judge against the table, publish, hold.

The rules (replays, stale versions, golden records of non-person entities) are the pure
functions of ``streams.ingest``; this module applies them to a message and writes what they
decide: the golden record (or, for people and links, the event on the resolve topic), the
table's new value and its changelog message, or a dead letter. It needs no faust: the app
hands it its table (anything with a ``data`` mapping), the producer's send callable, the
serializers and the dead-letter sender.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import orjson
from faust.types import TP
from faust.types.stores import StoreT

from schemas.dead_letters import Rejected, processing_error
from schemas.errors import SerializationError
from schemas.topics import TopicNames
from streams.decoding import EventDecoder, once_the_registry_answers
from streams.ingest import (
    REMEMBERED_EVENT_IDS,
    RESOLVED_ENTITIES,
    AgencyEvent,
    Held,
    Verdict,
    golden_entity,
    judge,
    remember,
)
from streams.input_gaps import ContiguousInput
from streams.metrics import StreamMetrics
from streams.outputs import DeadLetterSender, InputMessage, Send, Serialize


def is_latest_accepted(held: Held, event_id: str, source_version: int) -> bool:
    """Whether a replayed event is the one the table holds as the record's latest accepted
    version: the held entry keeps that event's id last (``remember_stale``)."""
    return held.event_ids[-1] == event_id and held.source_version == source_version


def remember_stale(held: Held | None, event_id: str) -> Held:
    """The held entry after a stale event: its id is remembered (its replay is a replay),
    but before the id of the accepted latest version, which stays last, so a replay of that
    one is still told apart (``is_latest_accepted``), even from a stale event that claimed
    the same version. The JSON is the one ``remember`` gives, so workers of an earlier
    release read it unchanged."""
    if held is None:  # a stale verdict always has an entry; this keeps the types honest
        return remember(None, event_id, 0)
    *earlier, accepted = held.event_ids
    return Held(held.source_version,
                (*earlier, event_id, accepted)[-REMEMBERED_EVENT_IDS:])


class HeldTable(Protocol):
    """The ingest table (faust's ``Table``): only its store, ``data``, is used."""

    @property
    def data(self) -> Any: ...  # a mutable mapping: str key -> the JSON of ``Held``


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


class IngestHandler:
    def __init__(
        self, *, topics: TopicNames, held: HeldTable, changelog_topic: str, send: Send,
        decoder: EventDecoder, serializers: Callable[[str], Serialize],
        dead_letter: DeadLetterSender, metrics: StreamMetrics, outputs_ready: asyncio.Event,
        contiguous: ContiguousInput | None = None,
    ) -> None:
        self.topics = topics
        self.held = held
        self._changelog_topic = changelog_topic
        self._send = send
        self._decoder = decoder
        self._serializers = serializers
        self._dead_letter = dead_letter
        self.metrics = metrics
        self._outputs_ready = outputs_ready  # the agent waits until its topics exist
        # every message of a partition once at least, whatever faust hands over (None: as
        # handed, for tests of one message)
        self.contiguous = contiguous
        self._ingest_routes: dict[str, IngestRoute] = {}

    async def ingest_one(self, message: InputMessage) -> None:
        """Judge one agency event and pass it on; what cannot be processed, whatever the
        reason, becomes a dead letter and the stream goes on with the next message."""
        if not self._outputs_ready.is_set():
            await self._outputs_ready.wait()
        if self.contiguous is not None:
            missed = await self.contiguous.take(message)
            if missed is None:
                return  # handed again: it was processed in this assignment
            for earlier in missed:  # skipped by faust (streams.input_gaps)
                await self._ingest_or_dead_letter(earlier)
            await self.contiguous.processed(message)
        await self._ingest_or_dead_letter(message)

    async def _ingest_or_dead_letter(self, message: InputMessage) -> None:
        if message.value is None:
            # a tombstone of `tipsync erase` (compaction's cue): no event to ingest, but its
            # offset counts as processed (streams.input_gaps), like any other message's
            return
        try:
            # A serializer meeting a registry that cannot answer (e.g. while its database
            # restarts) waits for it; the message is tried again whole, which is safe: the
            # serializer runs before anything is held or sent.
            await once_the_registry_answers(lambda: self._ingest(message))
        except Rejected as rejected:
            await self._dead_letter("ingest", message, rejected.dead_letter)
        except Exception as error:  # noqa: BLE001 - faust has acknowledged the message already
            # Left to faust, the exception would kill the agent and the event would be lost
            # (faust acknowledges a message before the agent is done with it). Its text may
            # quote personal data: the dead letter and the log name only its type and where.
            await self._dead_letter(
                "ingest", message, processing_error("ingest", error, message.topic)
            )

    async def _ingest(self, message: InputMessage) -> None:
        counters = self._ingest_routes.get(message.topic) or self._route(message.topic)
        agency_id, entity = counters.agency_id, counters.entity
        counters.events_in.inc()
        event = await self._decoder.agency_event(message.value, agency_id, entity, message.key)
        key = event.held_key
        held = Held.from_json(self.held.data.get(key))
        verdict = judge(held, event.event_id, event.source_version)
        if verdict is Verdict.REPLAY:  # its id is already remembered
            assert held is not None
            if not is_latest_accepted(held, event.event_id, event.source_version):
                counters.replays_dropped.inc()
                return
            # The event the table holds as the record's latest: its output may never have
            # reached Kafka. The table's store (local RocksDB) and its changelog message may
            # have outlived a worker killed before the output was acknowledged, and the input,
            # not committed, comes back: sending the output again is what keeps at-least-once
            # across that hop (downstream is idempotent: resolve ignores a person it already
            # holds at that version, the sink keeps the highest golden_version).
            await self._forward(event, message)
            counters.events_out.inc()
            return
        if verdict is Verdict.STALE:
            await self._hold(key, remember_stale(held, event.event_id), message)
            counters.stale_dropped.inc()
            return
        output = self._output(event, message)
        # The table moves forward only once the output is ready: an event that failed on the
        # way is not remembered, so publishing it again once the cause is fixed is no replay.
        await self._hold(key, remember(held, event.event_id, event.source_version), message)
        await self._send(*output)
        counters.events_out.inc()

    async def _forward(self, event: AgencyEvent, message: InputMessage) -> None:
        await self._send(*self._output(event, message))

    def _output(
        self, event: AgencyEvent, message: InputMessage
    ) -> tuple[str, bytes, bytes | None]:
        """Where an accepted event goes: (topic, key, value)."""
        entity = event.entity
        if entity in RESOLVED_ENTITIES:
            return self.topics.resolve, event.held_key.encode(), message.value
        golden, value = golden_entity(event)
        try:
            data = None if value is None else self._serializers(entity)(value)
        except SerializationError as error:
            raise Rejected("invalid_envelope", str(error)) from None
        return self.topics.reconciled(entity), golden.encode(), data

    async def _hold(self, key: str, held: Held, message: InputMessage) -> None:
        """Write ``held`` to the table: its store, and its changelog partition (the input's).

        What ``table[key] = ...`` does, without faust's per-message bookkeeping around
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
        await self._send(
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
