"""Reading a whole topic by hand: the operators' tools that read every message of a topic
now (``tipsync erase``, ``tipsync dlq``, ``tipsync review decide``) assign its partitions
themselves and join no group."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition


class TopicReadError(RuntimeError):
    """Reading ``topic`` stopped: the broker refused or failed (``error``), or gave nothing
    for ``timeout`` seconds while messages remained (``error`` is None)."""

    def __init__(self, topic: str, error: KafkaError | None, timeout: float) -> None:
        self.topic = topic
        self.error = error
        self.timeout = timeout
        what = (f"gave nothing for {timeout:g} s while messages remained" if error is None
                else f"failed ({error.str()})")
        super().__init__(f"reading {topic} {what}")


def group_lookup_refused(error: KafkaError) -> bool:
    """librdkafka looks the coordinator of the group it needs an id for up, and the broker
    refuses that to a principal without a group right (least privilege): an event, not a
    failed read (the fetches of assigned partitions go on), since the group is never joined
    and nothing is committed."""
    return error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED


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


def read_to_end(consumer: Consumer, topic: str, partitions: Iterable[int],
                timeout: float) -> Iterator[Message]:
    """Every message of ``topic``'s ``partitions`` up to each one's end now, in the order
    each partition holds them. The consumer needs ``enable.partition.eof``; it is unassigned
    afterwards. TopicReadError when the broker refuses or stalls."""
    ends = assign_to_end(consumer, topic, partitions, timeout)
    try:
        while ends:
            message = consumer.poll(timeout)
            if message is None:
                raise TopicReadError(topic, None, timeout)
            error, partition = message.error(), message.partition() or 0
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ends.pop(partition, None)
                    continue
                if group_lookup_refused(error):
                    continue
                raise TopicReadError(topic, error, timeout)
            if partition not in ends:
                continue
            yield message
            if (message.offset() or 0) + 1 >= ends[partition]:
                ends.pop(partition, None)
    finally:
        consumer.unassign()
