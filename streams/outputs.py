"""What the stages publish, apart from deciding it: serializers of the reconciled schemas,
dead letters, and resolve's outputs with their counters.

Every message goes out through one ``Send`` callable, in the app ``OutputProducer.send``
(``streams.output_producer``: librdkafka, not faust's per-message bookkeeping over aiokafka).
faust's flush before every offset commit waits for it too, so an input's offset is never
committed before its outputs are acknowledged; a delivery that still fails after the
producer's retries stops the worker (uncommitted inputs are then processed again by whoever
takes over). Taking the callable rather than the producer keeps these classes testable with a
list that collects what was sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from schemas.dead_letters import DeadLetter, dead_letter_headers, dead_letter_key
from schemas.registry import SchemaRegistry
from schemas.serde import AvroSerializer
from schemas.topics import TopicNames
from streams.metrics import StreamMetrics
from streams.output_producer import DeliveryCallback
from streams.resolve_stage import MAPPING, Output

log = logging.getLogger("tipsync.streams")

Serialize = Callable[[dict[str, Any]], bytes]


class Send(Protocol):
    """Hands one message to the producer (the signature of ``OutputProducer.send``)."""

    async def __call__(
        self, topic: str, key: bytes | None, value: bytes | None,
        partition: int | None = None, headers: list[tuple[str, bytes]] | None = None,
        on_delivered: DeliveryCallback | None = None,
    ) -> None: ...


class InputMessage(Protocol):
    """The parts of a consumed message (faust's ``Message``) the stages read."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class Serializers:
    """The serializer of each reconciled output, made once (each asks the registry for its
    schema id when made)."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry
        self._serializers: dict[str, AvroSerializer] = {}

    def __call__(self, output: str) -> AvroSerializer:
        serializer = self._serializers.get(output)
        if serializer is None:
            serializer = AvroSerializer(self.registry, f"reconciled.{output}")
            self._serializers[output] = serializer
        return serializer


class DeadLetterSender:
    """Sends a message a stage gives up on to the stage's dead-letter topic, as it came, with
    the headers of ``schemas.dead_letters`` (the one dead-letter format), counts and logs it."""

    def __init__(self, send: Send, topics: TopicNames, metrics: StreamMetrics) -> None:
        self._send = send
        self._topics = topics
        self._metrics = metrics

    async def __call__(self, stage: str, message: InputMessage, letter: DeadLetter) -> None:
        headers = dead_letter_headers(
            letter, stage, message.topic, message.partition, message.offset
        )
        key = dead_letter_key(message.key, message.topic, message.partition, message.offset)
        await self._send(self._topics.dlq(stage), key, message.value, headers=headers)
        self._metrics.dead_letters.labels(stage, letter.reason).inc()
        log.log(
            logging.ERROR if letter.reason == "processing_error" else logging.WARNING,
            "dead letter %s[%d]@%d (%s): %s",
            message.topic, message.partition, message.offset, letter.reason, letter.detail,
        )


class ResolvePublisher:
    """Publishes resolve's outputs (golden people, links, match decisions, the person
    mapping) to their topics and counts them; hands each to ``feeds`` (``streams.feeds``)
    after it."""

    def __init__(self, send: Send, topics: TopicNames, serializers: Callable[[str], Serialize],
                 metrics: StreamMetrics,
                 feeds: Callable[[Output], Awaitable[None]] | None = None) -> None:
        self._send = send
        self._feeds = feeds
        self._topics = topics
        self._serializers = serializers
        self._metrics = metrics
        # resolve's per-output topic, counter and serializer, and labelled counters, looked up
        # once: a label lookup per message costs more than the increment it serves
        self._output_routes: dict[str, tuple[str, Any, Serialize | None]] = {}
        self._decisions: dict[str, Any] = {}

    async def __call__(self, output: Output) -> None:
        kind = output.kind
        route = self._output_routes.get(kind)
        if route is None:
            route = self._output_routes[kind] = (
                self._topics.person_mapping if kind == MAPPING else self._topics.reconciled(kind),
                self._metrics.resolve_outputs.labels(kind),
                None if kind == MAPPING else self._serializers(kind),
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
        if self._feeds is not None:
            await self._feeds(output)
        if value is None:
            return
        if kind == "match_decision":
            decision = value["decision"]
            decisions = self._decisions.get(decision)
            if decisions is None:
                decisions = self._decisions[decision] = (
                    self._metrics.match_decisions.labels(decision)
                )
            decisions.inc()
        elif kind == "person" and value.get("merged_into"):
            self._metrics.merges.inc()
