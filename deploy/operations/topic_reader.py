"""Reading a whole topic by hand: the operators' tools that read every message of a topic
now (``tipsync erase``, ``tipsync dlq``) assign its partitions themselves and join no group."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import Consumer, TopicPartition


def assign_to_end(consumer: Consumer, topic: str, partitions: Iterable[int],
                  timeout: float) -> dict[int, int]:
    """Assign every non-empty partition of ``topic`` from its first message; returns
    partition -> end offset now (where reading stops), empty when there is nothing to read."""
    ends: dict[int, int] = {}
    assignment = []
    for partition in sorted(partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                   timeout=timeout)
        if high > low:
            ends[partition] = high
            assignment.append(TopicPartition(topic, partition, low))
    if assignment:
        consumer.assign(assignment)
    return ends
