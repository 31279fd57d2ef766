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
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from schemas.dead_letters import DeadLetter, Rejected, processing_error
from streams.decoding import EventDecoder
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

# ``ResolveRecovery.rebuild``: the stage holding every message before the offset, and how
# many messages it read (None: nothing before the offset)
Rebuild = Callable[[int], Awaitable[tuple[ResolveStage, int | None]]]
ChangeModel = Callable[[ResolveStage, InputMessage], Awaitable[None]]


class ResolveHandler:
    def __init__(
        self, *, rebuild: Rebuild, change_model: ChangeModel, snapshots: SnapshotSchedule,
        decoder: EventDecoder, publish: ResolvePublisher, dead_letter: DeadLetterSender,
        metrics: StreamMetrics, outputs_ready: asyncio.Event,
    ) -> None:
        self._rebuild = rebuild
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
        self._unfrozen_records = 0  # resolved since the last gc.freeze
        self._resolved: dict[str, Any] = {}  # entity -> its labelled counter, looked up once

    def forget(self) -> None:
        """Drop the stage; the next message rebuilds it from the resolve topic."""
        self.stage = None

    async def resolve_one(self, message: InputMessage) -> None:
        if not self._outputs_ready.is_set():
            await self._outputs_ready.wait()
        if self.stage is None:
            self.stage, replayed = await self._rebuild(message.offset)
            self.snapshots.rebuilt(replayed)
            self._unfrozen_records = 0
            gc.freeze()
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
