"""The stream app's producer for what it publishes: librdkafka (confluent-kafka), not aiokafka.

faust still consumes (through aiokafka) and commits; everything the app writes — golden
records, the resolve topic, the ingest table's changelog, dead letters — goes through this
producer. aiokafka's producer is pure Python and cost the worker ~60 us of CPU per message
(batching, the sender task, socket writes, the murmur2 partitioner); librdkafka does that
work in C, on threads of its own.

At-least-once is kept the way faust keeps it: before it commits offsets (and when partitions
are revoked, and when it stops) faust flushes ``app.producer``; ``StreamApp``
(``streams.app``) makes that flush also wait until every message given to this producer
before it is acknowledged. A message that still cannot be delivered after librdkafka's
retries stops the worker, so no input whose output was lost is ever committed.

Delivery reports are served on the event loop's thread (``poll(0)`` after each message and
while flushing), so their callbacks may touch the app's state without locks.

While the worker is behind its input (``behind``: the message it processes is older than
``GATHER_BEHIND_SECONDS``), outputs are gathered here and handed to librdkafka together every
``GATHER_SECONDS``: librdkafka sends one partition per produce request (confluentinc/
librdkafka#1700) and resolve writes to ~100 partitions, so at its 20 ms linger a backfill sent
about one message per request, and produce requests were a third of Kafka's CPU. A worker that
has caught up hands each message over at once, as before (a longer linger would make every
change wait: docs/BENCHMARKS.md, session 13). The order of the messages is kept (one queue,
one producer), and a flush hands over what is gathered before it waits. (An agency whose clock
is behind makes its events look late: their outputs then wait up to ``GATHER_SECONDS`` more.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import confluent_kafka
from faust.transport.drivers import aiokafka as faust_aiokafka

from schemas.client_config import ClientConfig

# How long a flush sleeps between looks at what is still unacknowledged (seconds).
FLUSH_POLL_SECONDS = 0.002
# Gathering (see above): from how far behind its input the worker gathers its outputs, how
# long it gathers them at most, and how many.
GATHER_BEHIND_SECONDS = 1.0
GATHER_SECONDS = 0.1
GATHER_MAX_MESSAGES = 10_000

class DeliveryFailed(RuntimeError):
    """A message the app published was refused by Kafka after librdkafka's retries, or an
    input was left unfinished (``OutputProducer.hold_commits``)."""


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
        # Messages are counted per epoch; a flush closes the current epoch and waits for it
        # and the earlier ones only (see ``flush``).
        self._epoch = 0
        self._in_flight: dict[int, int] = {}  # epoch -> messages not yet reported
        self._reporters: dict[tuple[int, DeliveryCallback | None], Callable[[Any, Any], None]] = {}
        # Gathered messages (epoch, topic, delivery callback, arguments), in the order sent,
        # and since when the oldest of them waits (time.monotonic()).
        self._gathering = False
        self._gathered: list[tuple[int, str, DeliveryCallback | None, dict[str, Any]]] = []
        self._gathered_since = 0.0
        self._hand_over_timer: asyncio.TimerHandle | None = None

    def behind(self, seconds: float) -> None:
        """How far behind its input the worker is now (the message it is about to process
        was written that many seconds ago): from ``GATHER_BEHIND_SECONDS`` on, outputs are
        gathered; below it, what was gathered is handed over at once."""
        self._gathering = seconds >= GATHER_BEHIND_SECONDS
        if not self._gathering and self._gathered:
            self._hand_over()  # what a full local queue refuses waits for the timer or a flush

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None,
        partition: int | None = None, headers: list[tuple[str, bytes]] | None = None,
        on_delivered: DeliveryCallback | None = None,
    ) -> None:
        """Hand one message to librdkafka, or gather it while behind (see above); waits only
        while librdkafka's local queue is full."""
        arguments: dict[str, Any] = {"key": key, "value": value}
        if partition is not None:
            arguments["partition"] = partition
        if headers:
            arguments["headers"] = headers
        if self._gathering or self._gathered:
            await self._gather(topic, on_delivered, arguments)
            return
        while True:
            epoch = self._epoch  # a flush may have begun while the queue was full
            try:
                self._producer.produce(topic, on_delivery=self._report_of(epoch, on_delivered),
                                       **arguments)
                break
            except BufferError:  # the local queue is full: let the broker catch up
                self._producer.poll(0)
                await asyncio.sleep(FLUSH_POLL_SECONDS)
        # counted before any poll can report it
        self._in_flight[epoch] = self._in_flight.get(epoch, 0) + 1
        self._producer.poll(0)

    async def _gather(self, topic: str, on_delivered: DeliveryCallback | None,
                      arguments: dict[str, Any]) -> None:
        epoch = self._epoch
        self._in_flight[epoch] = self._in_flight.get(epoch, 0) + 1  # until reported
        now = time.monotonic()
        if not self._gathered:
            self._gathered_since = now
        self._gathered.append((epoch, topic, on_delivered, arguments))
        if (not self._gathering or len(self._gathered) >= GATHER_MAX_MESSAGES
                or now - self._gathered_since >= GATHER_SECONDS):
            await self._hand_over_all()
        elif self._hand_over_timer is None:
            self._hand_over_timer = asyncio.get_running_loop().call_later(
                GATHER_SECONDS, self._hand_over_when_due)

    def _hand_over_when_due(self) -> None:
        self._hand_over_timer = None
        if not self._hand_over():  # the local queue is full: again shortly
            self._hand_over_timer = asyncio.get_running_loop().call_later(
                FLUSH_POLL_SECONDS, self._hand_over_when_due)

    async def _hand_over_all(self) -> None:
        while not self._hand_over():
            await asyncio.sleep(FLUSH_POLL_SECONDS)

    def _hand_over(self) -> bool:
        """Hand the gathered messages to librdkafka, in order; False when its local queue
        filled up first (the rest stay gathered)."""
        gathered = self._gathered
        handed = 0
        try:
            for epoch, topic, on_delivered, arguments in gathered:
                self._producer.produce(topic, on_delivery=self._report_of(epoch, on_delivered),
                                       **arguments)
                handed += 1
        except BufferError:
            del gathered[:handed]
            self._gathered_since = time.monotonic()
            self._producer.poll(0)
            return False
        gathered.clear()
        if self._hand_over_timer is not None:
            self._hand_over_timer.cancel()
            self._hand_over_timer = None
        self._producer.poll(0)
        return True

    async def flush(self) -> None:
        """Wait until every message handed over before this call is acknowledged; raises
        ``DeliveryFailed`` once any message could not be delivered (then at every flush).

        Messages handed over while it waits are not waited for: they are the outputs of
        inputs that a commit flushing now does not cover (faust takes the offsets it commits
        before it flushes). Waiting until nothing at all was in flight, as before session 10,
        lasted as long as the agents kept producing: seconds under load (2.9 s at 300
        changes/s, 15 s in a backfill), with faust's commit held meanwhile, and the intake
        with it at the next ``broker_commit_every``."""
        await self._hand_over_all()  # gathered messages are counted in their epochs already
        barrier = self._epoch
        self._epoch += 1
        self._reporters = {key: report for key, report in self._reporters.items()
                           if key[0] > barrier}
        while self._in_flight_up_to(barrier):
            self._producer.poll(0)
            if self._in_flight_up_to(barrier):
                await asyncio.sleep(FLUSH_POLL_SECONDS)
        if self.failed is not None:
            raise DeliveryFailed(
                f"{self.failed}; the inputs behind it are not committed and are processed "
                "again when the worker restarts"
            )

    def hold_commits(self, reason: str) -> None:
        """Make every flush from now on raise (``DeliveryFailed``, naming ``reason``): faust
        flushes before it commits, so it commits nothing more. For an input the app could
        not finish (``streams.agent_guard``)."""
        if self.failed is None:
            self.failed = reason

    def _failure(self, error: Any, message: Any) -> None:
        text = (f"a message could not be delivered to Kafka ({message.topic()}"
                f"[{message.partition()}]: {error})")
        if self.failed is None:
            self.failed = text
        self._on_failure(text)

    def _in_flight_up_to(self, barrier: int) -> bool:
        return any(epoch <= barrier for epoch in self._in_flight)

    def _report_of(
        self, epoch: int, on_delivered: DeliveryCallback | None
    ) -> Callable[[Any, Any], None]:
        return self._reporters.get((epoch, on_delivered)) or self._reporter(epoch, on_delivered)

    def _reporter(
        self, epoch: int, on_delivered: DeliveryCallback | None
    ) -> Callable[[Any, Any], None]:
        """The delivery report of the messages of ``epoch`` given ``on_delivered`` (one
        function per pair, kept until the epoch is flushed)."""
        in_flight = self._in_flight

        def report(error: Any, message: Any) -> None:
            left = in_flight[epoch] - 1
            if left:
                in_flight[epoch] = left
            else:
                del in_flight[epoch]
            if error is not None:
                self._failure(error, message)
            elif on_delivered is not None:
                on_delivered(message.topic(), message.partition(), message.offset())
        self._reporters[(epoch, on_delivered)] = report
        return report
