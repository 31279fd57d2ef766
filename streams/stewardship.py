"""Forwarding stewards' decisions to the resolve partition (the stream app's third agent).

``tipsync review decide`` publishes a ``StewardDecision`` (``schemas.stewardship``) on the
governed topic ``tip.stewardship.decisions``, keyed by its pair key. This forwarder checks
each one (it decodes, names two records, and its key is its pair) and appends its bytes,
unchanged, to ``tip.internal.resolve`` with the key ``steward:<pair key>``
(``streams.resolve_stage.steward_key``). On that one partition a decision is ordered with the
records it binds, its offset is the golden version of what it changes, every rebuild replays
it (``streams.recovery``), snapshots carry it (it is part of the resolver's state) and
compaction keeps the latest decision of each pair, so nothing else has to remember it.

What is not a valid decision goes to ``tip.dlq.ingest`` (forwarding is ingest's part of the
work) and the stream goes on. Delivery is at-least-once like the rest: a decision forwarded
twice is the same decision twice, and the resolver ignores a decision that is not newer than
the one it holds for the pair (``streams.resolve.stewardship``).
"""

from __future__ import annotations

import asyncio
import logging

from schemas.dead_letters import Rejected, processing_error
from schemas.topics import TopicNames
from streams.decoding import EventDecoder
from streams.input_gaps import ContiguousInput
from streams.outputs import DeadLetterSender, InputMessage, Send
from streams.resolve_stage import steward_key

log = logging.getLogger("tipsync.streams")


class StewardshipForwarder:
    def __init__(
        self, *, topics: TopicNames, send: Send, decoder: EventDecoder,
        dead_letter: DeadLetterSender, outputs_ready: asyncio.Event,
        contiguous: ContiguousInput | None = None,
    ) -> None:
        self._topics = topics
        # every decision once at least, whatever faust hands over (streams.input_gaps)
        self._contiguous = contiguous
        self._send = send
        self._decoder = decoder
        self._dead_letter = dead_letter
        self._outputs_ready = outputs_ready
        self.forwarded = 0

    async def forward_one(self, message: InputMessage) -> None:
        if not self._outputs_ready.is_set():
            await self._outputs_ready.wait()
        if self._contiguous is not None:
            missed = await self._contiguous.take(message)
            if missed is None:
                return  # handed again: forwarded in this assignment
            for earlier in missed:  # skipped by faust
                await self._forward(earlier)
            await self._contiguous.processed(message)
        await self._forward(message)

    async def _forward(self, message: InputMessage) -> None:
        try:
            await self._decoder.steward_decision(message.key, message.value)
            assert message.key is not None  # checked: it is the decision's pair key
            key = steward_key(message.key.decode())
        except Rejected as rejected:
            await self._dead_letter("ingest", message, rejected.dead_letter)
            return
        except Exception as error:  # noqa: BLE001 - faust has acknowledged the message already
            await self._dead_letter(
                "ingest", message, processing_error("ingest", error, message.topic)
            )
            return
        await self._send(self._topics.resolve, key.encode(), message.value, partition=0)
        self.forwarded += 1
