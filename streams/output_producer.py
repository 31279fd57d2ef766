"""The stream app's producer for what it publishes: librdkafka (confluent-kafka), not aiokafka.

faust still consumes (through aiokafka) and commits; everything the app writes — golden
records, the resolve topic, the ingest table's changelog, dead letters — goes through this
producer. aiokafka's producer is pure Python and cost the worker ~60 us of CPU per message
(batching, the sender task, socket writes, the murmur2 partitioner); librdkafka does that
work in C, on threads of its own.

At-least-once is kept the way faust keeps it: before it commits offsets (and when partitions
are revoked, and when it stops) faust flushes ``app.producer``; ``StreamApp``
(``streams.app``) makes that flush also wait until every message given to this producer is
acknowledged. A message that still cannot be delivered after librdkafka's retries stops the
worker, so no input whose output was lost is ever committed.

Delivery reports are served on the event loop's thread (``poll(0)`` after each message and
while flushing), so their callbacks may touch the app's state without locks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import confluent_kafka
from faust.transport.drivers import aiokafka as faust_aiokafka

from schemas.client_config import ClientConfig

# How long a flush sleeps between looks at what is still unacknowledged (seconds).
FLUSH_POLL_SECONDS = 0.002

class DeliveryFailed(RuntimeError):
    """A message the app published was refused by Kafka after librdkafka's retries."""


DeliveryCallback = Callable[[str, int, int], None]  # topic, partition, offset


class IdempotentFaustProducer(faust_aiokafka.Producer):  # type: ignore[misc]
    """faust's own producer (its assignor topic; anything it writes itself) with ``acks=all``
    and idempotence, as every producer of tipsync: faust sets them only inside transactions
    (exactly_once, which the app does not use). ``StreamApp`` installs it on faust's
    transport."""

    def _settings_extra(self) -> dict[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class OutputProducer:
    def __init__(
        self, bootstrap: str | ClientConfig, on_failure: Callable[[str], None]
    ) -> None:
        # ``bootstrap``: the servers, or the client config (``Settings.client``)
        self._producer = confluent_kafka.Producer(ClientConfig.of(bootstrap).librdkafka({
            "linger.ms": 20,
            # per partition: in order, and no duplicates when librdkafka retries; a write
            # counts once min.insync.replicas replicas have it
            "enable.idempotence": True,
            "acks": "all",
            # the Java client's partitioner, which aiokafka (faust) uses too: a key keeps the
            # partition it had before (compacted topics, the sink's per-key order)
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 1_000_000,
        }))
        self._on_failure = on_failure
        # The first delivery that failed: every later flush raises, so faust, which flushes
        # before it commits offsets, never commits past an input whose output is lost (the
        # crash ``on_failure`` starts is a task of its own and could come after the commit).
        self.failed: str | None = None
        self._reporters: dict[DeliveryCallback, Callable[[Any, Any], None]] = {}

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None,
        partition: int | None = None, headers: list[tuple[str, bytes]] | None = None,
        on_delivered: DeliveryCallback | None = None,
    ) -> None:
        """Hand one message to librdkafka; waits only while its local queue is full."""
        report = self._report if on_delivered is None else (
            self._reporters.get(on_delivered) or self._reporter(on_delivered)
        )
        arguments: dict[str, Any] = {"key": key, "value": value, "on_delivery": report}
        if partition is not None:
            arguments["partition"] = partition
        if headers:
            arguments["headers"] = headers
        while True:
            try:
                self._producer.produce(topic, **arguments)
                break
            except BufferError:  # the local queue is full: let the broker catch up
                self._producer.poll(0)
                await asyncio.sleep(FLUSH_POLL_SECONDS)
        self._producer.poll(0)

    async def flush(self) -> None:
        """Wait until every message handed over so far is acknowledged; raises
        ``DeliveryFailed`` when one of them could not be delivered, then and ever after."""
        while len(self._producer):
            self._producer.poll(0)
            if len(self._producer):
                await asyncio.sleep(FLUSH_POLL_SECONDS)
        if self.failed is not None:
            raise DeliveryFailed(
                f"a message could not be delivered to Kafka ({self.failed}); the inputs "
                "behind it are not committed and are processed again when the worker restarts"
            )

    def _failure(self, error: Any, message: Any) -> None:
        text = f"{message.topic()}[{message.partition()}]: {error}"
        if self.failed is None:
            self.failed = text
        self._on_failure(text)

    def _report(self, error: Any, message: Any) -> None:
        if error is not None:
            self._failure(error, message)

    def _reporter(self, on_delivered: DeliveryCallback) -> Callable[[Any, Any], None]:
        def report(error: Any, message: Any) -> None:
            if error is not None:
                self._failure(error, message)
            else:
                on_delivered(message.topic(), message.partition(), message.offset())
        self._reporters[on_delivered] = report
        return report
