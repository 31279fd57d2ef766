"""Rolling out a scoring model: the marker on the resolve topic, and applying it.

The model the published view was made with, and the resolve offset it took effect at, are
recorded on the model topic (``<root>.internal.resolve-model``). When the worker's configured
model is another, it appends a model-change marker to the resolve topic; at its offset
resolve re-resolves every record held and publishes the differences
(``ResolveStage.apply_model_change``), then records the new model. Because the marker is a
message of the resolve topic, a rebuild replays it at the same place (``streams.recovery``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.client_config import ClientConfig
from schemas.dead_letters import DeadLetter
from schemas.topics import TopicNames
from streams.outputs import DeadLetterSender, InputMessage, Send
from streams.resolve.model_file import DEFAULT_MODEL_FILE, ModelFile, ModelFileError, dumps, loads
from streams.resolve_stage import Output, ResolveStage, model_change_key

log = logging.getLogger("tipsync.streams")


def marker_model(topics: TopicNames, message: InputMessage) -> ModelFile:
    """The model a model-change marker of the resolve topic carries; raises ModelFileError
    (or UnicodeDecodeError) for a marker that does not hold a valid model file."""
    where = f"model-change marker {topics.resolve}[0]@{message.offset}"
    return loads((message.value or b"").decode(), where)


class ModelRollout:
    def __init__(
        self, *, bootstrap: str | ClientConfig, topics: TopicNames, model_file: ModelFile,
        send: Send, publish: Callable[[Output], Awaitable[None]], dead_letter: DeadLetterSender,
    ) -> None:
        self._bootstrap = bootstrap
        self.topics = topics
        self.model_file = model_file  # the configured one
        self._send = send
        self._publish = publish
        self._dead_letter = dead_letter

    async def recorded_model(self) -> tuple[ModelFile, int] | None:
        """The model the published view was made with and the resolve offset it took effect
        at, as recorded on the model topic; None before any model change."""
        consumer = AIOKafkaConsumer(
            **ClientConfig.of(self._bootstrap).aiokafka(), enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        partition = TopicPartition(self.topics.resolve_model, 0)
        latest: bytes | None = None
        try:
            consumer.assign([partition])
            # an explicit seek (streams.recovery says why: seek_to_beginning can end at the
            # latest offset, and the recorded model would be missed)
            earliest = (await consumer.beginning_offsets([partition]))[partition]
            consumer.seek(partition, earliest)
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

    async def roll_out(self) -> None:
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

    async def change_model(self, stage: ResolveStage, message: InputMessage) -> None:
        """Apply the model-change marker ``message`` to ``stage``, publish what changes and
        record the model on the model topic; a marker without a valid model becomes a dead
        letter."""
        try:
            model_file = marker_model(self.topics, message)
        except (ModelFileError, UnicodeDecodeError) as error:
            await self._dead_letter("resolve", message, DeadLetter("unresolvable", str(error)))
            return
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
