"""The agency side of an agency's feed: ``tip.outbound.<agency_id>`` into files or its own
database (``tipsync subscribe``, like ``tipsync produce`` in reverse).

It reads every partition of the feed, decodes each message with the contract's deserializer
(``schemas.outbound.FeedMessage``) and hands batches to a target (``producers.feed_targets``)
that stores the messages and the next offsets in one atomic step. Where to start is the
target's business, not a consumer group's: the partitions are assigned at the stored offsets
(the beginning of a partition the target has not seen), so a subscriber killed between or
during two batches neither loses nor repeats a message, and one restarted after SIGKILL goes
on at once (a group would hold the partitions for the dead member until its session timed
out). The offsets are also committed to the group ``tip.outbound.<agency_id>.subscribe``
(``TopicNames.outbound_group``: the agency's principal may read its feed and use groups under
that prefix, nothing else) after each batch is stored, only so that Kafka's tools can show how
far the agency has read.

It lives in ``producers/``, the agency-side package, because it runs at the agency next to its
producer, with the agency's credentials; like the producers it needs only ``schemas``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from producers.feed_targets import FeedRow, FeedTarget
from schemas.client_config import ClientConfig
from schemas.entities import FEED_MESSAGE
from schemas.errors import WireFormatError
from schemas.registry import SchemaRegistry
from schemas.serde import AvroDeserializer
from schemas.topics import TopicNames

log = logging.getLogger("tipsync.subscribe")

MISSING_TOPIC_WARN_SECONDS = 30.0
PARTITIONS_LOOK_SECONDS = 30.0


class SubscribeError(RuntimeError):
    """The feed cannot be read or stored; the message says which and what to do."""


@dataclass
class SubscribeSummary:
    messages: int = 0
    batches: int = 0


class Subscription:
    """One agency's feed into one target."""

    def __init__(self, client: ClientConfig, topics: TopicNames, agency_id: str,
                 target: FeedTarget, batch_size: int = 500) -> None:
        self.topic = topics.outbound(agency_id)
        self.group = topics.outbound_group(agency_id)
        self._agency_id = agency_id
        self._target = target
        self._batch_size = batch_size
        self._registry = SchemaRegistry(client.registry())
        self._deserialize = AvroDeserializer(self._registry)
        self._consumer = Consumer(client.librdkafka({
            "group.id": self.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }))
        self.summary = SubscribeSummary()
        self._warned_missing = -MISSING_TOPIC_WARN_SECONDS
        self._assigned = 0  # partitions assigned

    def _assign(self) -> None:
        """Read every partition of the feed from the offset the target stored (the beginning
        of one it has not seen). Partitions are assigned, not balanced by the group: a
        subscriber killed with SIGKILL stays a member of a group until its session times
        out, and a restarted one would wait that long for its partitions."""
        metadata = self._consumer.list_topics(self.topic, timeout=10).topics.get(self.topic)
        partitions = sorted(metadata.partitions) if metadata and not metadata.error else []
        if not partitions:
            self._missing_topic()
            return
        if len(partitions) == self._assigned:
            return
        stored = self._target.positions(self.topic)
        self._consumer.assign([
            TopicPartition(self.topic, partition, stored.get(partition, OFFSET_BEGINNING))
            for partition in partitions
        ])
        self._assigned = len(partitions)

    def _missing_topic(self) -> None:
        # The topic may be on its way (the stream app creates it too): wait, saying so.
        now = time.monotonic()
        if now - self._warned_missing >= MISSING_TOPIC_WARN_SECONDS:
            self._warned_missing = now
            log.warning("%s does not exist (yet); waiting. Is '%s' registered in "
                        "deploy/agencies.yaml and were the topics created (`tipsync topics "
                        "create`)?", self.topic, self._agency_id)

    def run(self, stop: Callable[[], bool], idle_seconds: float | None = None,
            poll_seconds: float = 0.5) -> SubscribeSummary:
        """Consume until ``stop()`` says so, or until nothing arrived for ``idle_seconds``."""
        last_message = last_look = time.monotonic()
        self._assign()
        while not stop():
            if time.monotonic() - last_look >= PARTITIONS_LOOK_SECONDS or not self._assigned:
                last_look = time.monotonic()
                self._assign()  # partitions added to the topic since
            if not self._assigned:
                time.sleep(poll_seconds)
                last_message = time.monotonic()  # idle counts from when there is a feed
                continue
            # wait for one message, then take what else is already fetched: consume() alone
            # would wait out its timeout whenever fewer than a batch are there
            first = self._consumer.poll(poll_seconds)
            messages = [] if first is None else [
                first, *self._consumer.consume(self._batch_size - 1, timeout=0)]
            rows = [row for row in map(self._row, messages) if row is not None]
            if rows:
                self._store(rows)
                last_message = time.monotonic()
            elif idle_seconds is not None and time.monotonic() - last_message >= idle_seconds:
                break
        return self.summary

    def _row(self, message: Message) -> FeedRow | None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return None
            if error.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                KafkaError.GROUP_AUTHORIZATION_FAILED):
                raise SubscribeError(
                    f"Kafka refused agency '{self._agency_id}' access to {self.topic} or its "
                    f"group {self.group} ({error.str()}); check the client config names the "
                    "agency's own principal (docs/SECURITY.md)"
                )
            if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                self._missing_topic()
                return None
            if not error.retriable() and error.fatal():
                raise SubscribeError(f"reading {self.topic} failed: {error.str()}")
            log.warning("reading %s: %s (retrying)", self.topic, error.str())
            return None
        partition, offset = int(message.partition() or 0), int(message.offset() or 0)
        try:
            record: dict[str, Any] = self._deserialize(
                message.value(), expected=FEED_MESSAGE  # type: ignore[arg-type]
            ).record
        except WireFormatError as undecodable:
            raise SubscribeError(
                f"{self.topic}[{partition}]@{offset} is not a feed message "
                f"({undecodable.reason}); "
                "nothing after it is stored until it is dealt with: report it to the "
                "task force's operators"
            ) from None
        if record.get("agency_id") != self._agency_id:
            raise SubscribeError(
                f"{self.topic}[{partition}]@{offset} is addressed to another agency; "
                "report it to the task force's operators (nothing after it is stored)"
            )
        return FeedRow(self.topic, partition, offset, record)

    def _store(self, rows: list[FeedRow]) -> None:
        positions: dict[int, int] = {}
        for row in rows:
            positions[row.partition] = max(positions.get(row.partition, 0), row.offset + 1)
        self._target.write(rows, positions)
        self.summary.messages += len(rows)
        self.summary.batches += 1
        # only for monitoring: where to resume is what the target stored
        self._consumer.commit(offsets=[
            TopicPartition(self.topic, partition, offset)
            for partition, offset in positions.items()
        ], asynchronous=True)

    def close(self) -> None:
        self._consumer.close()
        self._registry.close()
        self._target.close()
