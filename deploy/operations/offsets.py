"""Reading offsets: the thin I/O shell under ``tipsync lag``.

What Kafka knows (consumer groups, their members, committed offsets, end offsets, record
timestamps) comes from confluent-kafka's AdminClient and, for timestamps, a Consumer that
only reads (it is assigned partitions by hand, never joins a group and never commits). What
the sink knows comes from PostgreSQL: the sink stores its consumed offsets in
``reconciled.sink_offsets`` in the same transaction as its rows, so those, not Kafka's, are
the truth about how far the reconciled store is.
"""

from __future__ import annotations

import struct
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import psycopg
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from schemas import config
from schemas.config import Settings
from schemas.topics import TOPICS

SINK_OFFSETS_TABLE = "reconciled.sink_offsets"
KAFKA = "kafka"
POSTGRESQL = "postgresql"

Partition = tuple[str, int]


# A classic group's state as DescribeGroups names it -> as the admin API names it
# (``ConsumerGroupState``), which ``tipsync lag`` prints.
GROUP_STATES = {
    "Stable": "STABLE", "PreparingRebalance": "PREPARING_REBALANCING",
    "CompletingRebalance": "COMPLETING_REBALANCING", "Empty": "EMPTY", "Dead": "DEAD",
}


def assigned_partitions(assignment: bytes | None) -> list[Partition]:
    """The partitions of a member's assignment in the consumer protocol's encoding (Kafka's
    ConsumerProtocolAssignment, every version: int16 version, then an array of topics each
    with an array of int32 partitions; user data after it is not read). Bytes that are not
    such an assignment (another protocol type) give none."""
    if not assignment or len(assignment) < 6:
        return []
    try:
        (topics,) = struct.unpack_from(">i", assignment, 2)
        position, partitions = 6, list[Partition]()
        for _ in range(max(topics, 0)):
            (length,) = struct.unpack_from(">h", assignment, position)
            topic = assignment[position + 2:position + 2 + length].decode()
            position += 2 + length
            (count,) = struct.unpack_from(">i", assignment, position)
            position += 4
            numbers = struct.unpack_from(f">{max(count, 0)}i", assignment, position)
            position += 4 * max(count, 0)
            partitions.extend((topic, number) for number in numbers)
        return partitions
    except (struct.error, UnicodeDecodeError):
        return []


class OperationsError(Exception):
    """Something the operator has to fix before the tool can answer (the message says what)."""


@dataclass(frozen=True)
class GroupOffsets:
    """What one consumer group has committed, and who is in it right now."""

    group: str
    offsets_from: str  # KAFKA or POSTGRESQL
    state: str
    members: int
    committed: dict[Partition, int] = field(default_factory=dict)
    assigned: frozenset[Partition] = frozenset()

    @property
    def partitions(self) -> set[Partition]:
        return set(self.committed) | set(self.assigned)


def is_state_topic(topic: str) -> bool:
    """A faust table changelog or faust's leader-election topic (read, never consumed)."""
    return topic.endswith("-changelog") or topic.endswith("__assignor-__leader")


def pipeline_group_names(
    kafka_commits: Mapping[str, Iterable[Partition]],
    sink_groups: Iterable[str],
    prefix: str = "",
) -> list[str]:
    """Groups of the pipeline: every group the sink keeps offsets for, and every Kafka group
    that committed on a ``tip.`` topic; only those whose name starts with ``prefix``."""
    names = set(sink_groups) | {
        group for group, partitions in kafka_commits.items()
        if any(TOPICS.owns(topic) for topic, _ in partitions)
    }
    return sorted(name for name in names if name.startswith(prefix))


class OffsetReader:
    """One connection to Kafka (and, on demand, PostgreSQL) for one ``tipsync lag`` run."""

    def __init__(self, settings: Settings, timeout_seconds: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout_seconds
        self.admin = AdminClient(settings.client.librdkafka())

    def _kafka_error(self, what: str, error: Exception) -> OperationsError:
        return OperationsError(
            f"Kafka at {self.settings.kafka_bootstrap} did not answer when asked for {what}"
            f" ({error}); start the local stack with `tipsync stack up`, or point"
            f" {config.KAFKA_BOOTSTRAP} at a running cluster"
        )

    # --- groups and commits -------------------------------------------------------------

    def kafka_group_names(self) -> list[str]:
        try:
            listing = self.admin.list_consumer_groups(request_timeout=self.timeout).result()
        except KafkaException as error:
            raise self._kafka_error("its consumer groups", error) from error
        return sorted(group.group_id for group in listing.valid)

    def kafka_commits(self, groups: Iterable[str]) -> dict[str, dict[Partition, int]]:
        """Committed offsets per group; partitions without a commit are left out."""
        # The admin API takes one group per request; send them all, then wait.
        futures = {
            group: self.admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group)], request_timeout=self.timeout
            )[group]
            for group in groups
        }
        commits: dict[str, dict[Partition, int]] = {}
        for group, future in futures.items():
            try:
                result = future.result()
            except KafkaException as error:
                if error.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND:
                    commits[group] = {}
                    continue
                raise self._kafka_error(f"the offsets of group {group}", error) from error
            commits[group] = {
                (partition.topic, partition.partition): partition.offset
                for partition in result.topic_partitions or []
                if partition.offset >= 0
            }
        return commits

    def describe(self, groups: Iterable[str]) -> dict[str, tuple[str, int, frozenset[Partition]]]:
        """State, member count and assigned partitions of each group Kafka knows. Partitions
        of faust state topics are left out: they are not work to catch up on (faust reads a
        table's changelog to restore the table and never commits an offset on it)."""
        names = list(groups)
        if not names:
            return {}
        futures = self.admin.describe_consumer_groups(names, request_timeout=self.timeout)
        described: dict[str, tuple[str, int, frozenset[Partition]]] = {}
        for group, future in futures.items():
            try:
                description = future.result()
            except KafkaException:
                described[group] = ("UNKNOWN", 0, frozenset())
                continue
            assigned = frozenset(
                (partition.topic, partition.partition)
                for member in description.members
                for partition in (member.assignment.topic_partitions if member.assignment else [])
                if not is_state_topic(partition.topic)
            )
            state = getattr(description.state, "name", str(description.state))
            described[group] = (state, len(description.members), assigned)
        return described

    def listed(self, groups: Iterable[str]) -> dict[str, tuple[str, int, frozenset[Partition]]]:
        """``describe``'s answer, asked with librdkafka's group listing
        (``AdminClient.list_groups``: DescribeGroups v0 to each group's coordinator), for
        polling a stack whose groups are forming (the benchmarks' start-up wait). Not
        ``describe_consumer_groups``: in librdkafka
        2.16.0 (confluent-kafka 2.16.1 and 2.16.2 bundle it) a DescribeGroups that cannot be
        sent to a coordinator that just went away frees its request while it is still queued,
        and the process aborts ("rd_kafka_enq_once_del_source_return: Assertion `eonce->refcnt
        > 0' failed"; confluentinc/librdkafka#4605, fix proposed in #5397, not released).
        Seen killing ``tipsync bench faults`` on a three-node cluster while its groups formed
        (docs/OPERATIONS.md); the group listing answers such a failure as an error of the
        group instead. ``tipsync lag`` keeps ``describe`` (its one run with the listing under
        it failed on a rebalancing group, which both answer without partitions:
        ``GroupLag.caught_up``)."""
        described: dict[str, tuple[str, int, frozenset[Partition]]] = {}
        for group in dict.fromkeys(groups):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # list_groups: see above
                try:
                    listed = self.admin.list_groups(group=group, timeout=self.timeout)
                except KafkaException:
                    described[group] = ("UNKNOWN", 0, frozenset())
                    continue
            found = next((metadata for metadata in listed if metadata.id == group), None)
            if found is None or found.error is not None:
                described[group] = ("UNKNOWN", 0, frozenset())
                continue
            assigned = frozenset(
                partition
                for member in found.members
                for partition in assigned_partitions(member.assignment)
                if not is_state_topic(partition[0])
            )
            described[group] = (GROUP_STATES.get(str(found.state), "UNKNOWN"), len(found.members),
                                assigned)
        return described

    def sink_commits(self) -> tuple[dict[str, dict[Partition, int]], str | None]:
        """The sink's offsets from PostgreSQL, and a warning when they could not be read."""
        try:
            with psycopg.connect(self.settings.database_url, connect_timeout=5) as connection:
                rows = connection.execute(
                    "SELECT consumer_group, topic, partition, next_offset"
                    f" FROM {SINK_OFFSETS_TABLE}"
                ).fetchall()
        except psycopg.errors.UndefinedTable:
            return {}, None  # the sink's migrations have not run: no sink has consumed yet
        except psycopg.Error as error:
            return {}, (
                f"PostgreSQL ({self.settings.database_url.split('?')[0]}) could not be read for"
                f" the sink's offsets ({str(error).strip()}); groups that keep their offsets"
                " there are missing below. Start the stack (`tipsync stack up`) or check"
                f" {config.DATABASE_URL}"
            )
        commits: dict[str, dict[Partition, int]] = {}
        for group, topic, partition, next_offset in rows:
            commits.setdefault(group, {})[(topic, int(partition))] = int(next_offset)
        return commits, None

    # --- partitions -------------------------------------------------------------------

    def topic_partitions(self, topics: Iterable[str]) -> dict[str, list[int]]:
        """The partitions of each existing topic (a deleted topic is left out)."""
        try:
            metadata = self.admin.list_topics(timeout=self.timeout)
        except KafkaException as error:
            raise self._kafka_error("its topics", error) from error
        return {
            topic: sorted(metadata.topics[topic].partitions)
            for topic in topics
            if topic in metadata.topics and metadata.topics[topic].error is None
        }

    def _offsets(self, partitions: Iterable[Partition], spec: OffsetSpec) -> dict[Partition, int]:
        request = {TopicPartition(topic, partition): spec for topic, partition in partitions}
        if not request:
            return {}
        futures = self.admin.list_offsets(
            request,
            isolation_level=IsolationLevel.READ_UNCOMMITTED,  # what Kafka's own tool reports
            request_timeout=self.timeout,
        )
        offsets: dict[Partition, int] = {}
        for topic_partition, future in futures.items():
            try:
                offsets[(topic_partition.topic, topic_partition.partition)] = (
                    future.result().offset
                )
            except KafkaException as error:
                if error.args[0].code() in (
                    KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION
                ):
                    continue  # a deleted topic the group still has commits for
                raise self._kafka_error(
                    f"the offsets of {topic_partition.topic}[{topic_partition.partition}]", error
                ) from error
        return offsets

    def end_offsets(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        return self._offsets(partitions, OffsetSpec.latest())

    def log_start_offsets(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        return self._offsets(partitions, OffsetSpec.earliest())

    def record_timestamps(self, positions: Mapping[Partition, int]) -> dict[Partition, float]:
        """The timestamp (seconds) of the record at each position: the oldest message not yet
        consumed. A record removed by retention or compaction gives way to the next one."""
        if not positions:
            return {}
        consumer = Consumer(self.settings.client.librdkafka(
            {
                # Needed by the client, never joined: partitions are assigned by hand and
                # nothing is committed, so this tool cannot disturb the group it inspects.
                "group.id": f"tipsync-lag-reader-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_uncommitted",
                "enable.partition.eof": True,
                "fetch.max.bytes": 1_048_576,
            }
        ))
        timestamps: dict[Partition, float] = {}
        try:
            consumer.assign(
                [TopicPartition(topic, partition, offset)
                 for (topic, partition), offset in positions.items()]
            )
            deadline = time.monotonic() + self.timeout
            waiting = set(positions)
            while waiting and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None:
                    continue
                key = (message.topic(), message.partition())
                if key not in waiting:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        waiting.discard(key)
                    continue
                kind, milliseconds = message.timestamp()
                if kind != 0 and milliseconds >= 0:  # 0: TIMESTAMP_NOT_AVAILABLE
                    timestamps[key] = milliseconds / 1000.0
                waiting.discard(key)
                consumer.pause([TopicPartition(*key)])
        finally:
            consumer.close()
        return timestamps
