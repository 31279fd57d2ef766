"""Resolve's handling of one message of the resolve topic, the direct path of a person or link.

One worker owns the single resolve partition and keeps the ``ResolveStage`` in memory
(``streams.resolve_stage`` explains versions). A message goes: rebuild the stage if there
is none (``streams.recovery``), write a snapshot if one is due (``streams.snapshot_schedule``),
then decode, ``ResolveStage.apply``, publish the outputs (``streams.outputs``). A model-change
marker goes to ``streams.model_rollout`` instead; a steward's decision (forwarded by
``streams.stewardship``) to ``ResolveStage.apply_decision``; what cannot be resolved becomes a
dead letter. Nothing here knows faust: the app hands over the collaborators.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from schemas.dead_letters import DeadLetter, Rejected, processing_error
from streams.decoding import EventDecoder
from streams.input_gaps import Acknowledge
from streams.metrics import StreamMetrics
from streams.outputs import DeadLetterSender, InputMessage, ResolvePublisher
from streams.recovery import FREEZE_EVERY_RECORDS
from streams.resolve import InvalidPersonRecord
from streams.resolve_stage import (
    STEWARD_PREFIX,
    ResolveStage,
    is_model_change,
    is_steward_decision,
)
from streams.snapshot_schedule import SnapshotSchedule

log = logging.getLogger("tipsync.streams")

# ``ResolveRecovery.rebuild``: the stage holding every message before the offset, and how
# many messages it read (None: nothing before the offset)
Rebuild = Callable[[int], Awaitable[tuple[ResolveStage, int | None]]]
ChangeModel = Callable[[ResolveStage, InputMessage], Awaitable[None]]
# ``ResolveRecovery.read``: the messages of the resolve topic from the first offset up to (not
# including) the second, in order
ReadRange = Callable[[int, int], Awaitable[Sequence[InputMessage]]]
# the resolve partition's offset committed by the worker group (None: none yet)
Committed = Callable[[], Awaitable[int | None]]


class ResolveHandler:
    def __init__(
        self, *, rebuild: Rebuild, change_model: ChangeModel, snapshots: SnapshotSchedule,
        decoder: EventDecoder, publish: ResolvePublisher, dead_letter: DeadLetterSender,
        metrics: StreamMetrics, outputs_ready: asyncio.Event, read: ReadRange,
        committed: Committed, acknowledge: Acknowledge | None = None,
    ) -> None:
        self._rebuild = rebuild
        self._read = read
        # tells faust the messages read here were processed (streams.input_gaps)
        self._acknowledge = acknowledge
        self._committed = committed
        self._change_model = change_model
        self.snapshots = snapshots
        self._decoder = decoder
        self._publish = publish
        self._dead_letter = dead_letter
        self.metrics = metrics
        self._outputs_ready = outputs_ready  # the agent waits until its topics exist
        # None until the first message, and again after the partition was revoked or the
        # stage raised: the next message rebuilds it
        self.stage: ResolveStage | None = None
        # The offset after the last message the stage holds: the next one to resolve. None
        # when not known (at start, after a revoke): the stage is then rebuilt up to the
        # group's committed offset, the last one whose outputs are known to be delivered.
        self.next_offset: int | None = None
        self._unfrozen_records = 0  # resolved since the last gc.freeze
        self._resolved: dict[str, Any] = {}  # entity -> its labelled counter, looked up once

    def forget(self) -> None:
        """Drop the stage; the next message rebuilds it from the resolve topic, up to the
        group's committed offset (another worker may have moved on meanwhile)."""
        self.stage = None
        self.next_offset = None

    async def resolve_one(self, message: InputMessage) -> None:
        """Resolve one message handed by faust, and before it any the stage does not hold.

        The messages are resolved one after the other, offset after offset, whatever faust
        hands over: faust may hand a message again (seen: a second seek back to the
        committed offset after a restart; the stage holds it already, it is passed over) or
        skip messages (read in faust 0.15.3: a batch fetched before the seek to the committed
        offset that ends a rebalance, delivered after it, moves its read offset past
        messages fetched again after the seek, which it then drops as already read, and its
        gap tracking commits past them). Skipped messages are read from the topic here and
        resolved, outputs published, before the one handed; so is everything after the
        committed offset when the stage is rebuilt, rather than loaded silently up to the
        first offset handed (which may lie past messages whose outputs were never
        delivered: the fault suite's lost person and link records)."""
        if not self._outputs_ready.is_set():
            await self._outputs_ready.wait()
        await self._catch_up(message)
        assert self.next_offset is not None  # set with the stage
        if message.offset < self.next_offset:
            return  # handed again: the stage holds it, its outputs were published
        await self._resolve(message)

    async def _catch_up(self, message: InputMessage) -> None:
        """Make the stage hold every message before ``offset``: rebuild it if there is
        none, then resolve, outputs published, the messages faust did not hand over.
        (faust revokes the partition, and ``forget`` drops the stage, only once the message
        being resolved is done: only a processing error drops it meanwhile, keeping
        ``next_offset``.)"""
        offset = message.offset
        first: int | None = None  # the first offset read here, if any
        while True:
            if self.stage is None:
                await self._rebuild_stage(offset)
            start = self.next_offset
            assert start is not None  # set with the stage
            if start >= offset:
                break
            first = start if first is None else first
            missed = await self._read(start, offset)
            log.warning("resolve: %d message(s) of the resolve topic from offset %d not "
                        "handed by faust before offset %d; resolving them first",
                        len(missed), start, offset)
            for earlier in missed:
                if self.stage is None:
                    break  # a processing error dropped the stage: rebuild, go on from there
                if earlier.offset >= start:
                    await self._resolve(earlier)
            else:
                if self.stage is not None:
                    self.next_offset = offset  # (offsets compaction removed are not read)
                    break
        if first is not None and self._acknowledge is not None:
            # faust may count them as processed (streams.input_gaps.FaustAcknowledger)
            await self._acknowledge((message.topic, message.partition), first, offset)

    async def _rebuild_stage(self, offset: int) -> None:
        """Rebuild the stage up to the offset where what it holds is known to be published:
        the offset after its last message when a processing error dropped it, else the
        group's committed offset (never past ``offset``, the message to resolve next)."""
        until = self.next_offset
        if until is None:
            committed = await self._committed()
            until = offset if committed is None else min(committed, offset)
        self.stage, replayed = await self._rebuild(until)
        self.next_offset = until
        self.snapshots.rebuilt(replayed)
        if self.stage.erased_while_loading:
            # the snapshot it started from (older than an erasure) holds erased records
            await self.snapshots.purge(self.stage, until)
        self._unfrozen_records = 0
        gc.freeze()

    async def _resolve(self, message: InputMessage) -> None:
        """Resolve the message at ``next_offset`` and publish its outputs."""
        assert self.stage is not None
        self.next_offset = message.offset + 1
        if message.value is None:
            # A tombstone of `tipsync erase`, written once the record's DELETE (earlier in
            # this partition) had passed: the stage no longer holds the record, so the
            # snapshot written now lacks it, and the older ones, which hold it, go.
            await self.snapshots.purge(self.stage, message.offset)
            return
        if self.snapshots.due():
            # Between two messages: the stage holds exactly the messages before this one.
            await self.snapshots.write(self.stage, message.offset)
        self.snapshots.count()
        self._unfrozen_records += 1
        if self._unfrozen_records >= FREEZE_EVERY_RECORDS:
            self._unfrozen_records = 0
            gc.freeze()
        if is_model_change(message.key):
            # the stage as it is now: the partition may be revoked (stage forgotten) meanwhile
            await self._change_model(self.stage, message)
            return
        started = time.perf_counter()
        try:
            if is_steward_decision(message.key):
                entity = "steward_decision"
                decision = await self._decoder.steward_decision(
                    cast(bytes, message.key)[len(STEWARD_PREFIX):], message.value
                )
                outputs = self.stage.apply_decision(decision, golden_version=message.offset)
            else:
                # (ingest gives every resolve message its held key)
                event = await self._decoder.resolve_event(cast(bytes, message.key),
                                                          message.value)
                entity = event.entity
                outputs = self.stage.apply(event, golden_version=message.offset)
                if event.op == "DELETE":
                    self.snapshots.deleted()
        except Rejected as rejected:
            await self._dead_letter("resolve", message, rejected.dead_letter)
            return
        except InvalidPersonRecord as error:
            await self._dead_letter("resolve", message, DeadLetter("unresolvable", str(error)))
            return
        except Exception as error:  # noqa: BLE001 - faust has acknowledged the message already
            # The resolver may have changed part of its clusters before it raised, so its
            # state is no longer to be trusted: forget it, and the next message rebuilds it
            # from the resolve topic (``ResolveRecovery.rebuild``). The dead letter names only
            # the exception's type and where (its text may quote personal data).
            self.stage = None
            await self._dead_letter(
                "resolve", message, processing_error("resolve", error, message.topic)
            )
            return
        counter = self._resolved.get(entity)
        if counter is None:
            counter = self._resolved[entity] = self.metrics.resolved.labels(entity)
        counter.inc()
        for output in outputs:
            await self._publish(output)
        self.metrics.resolve_seconds.observe(time.perf_counter() - started)
