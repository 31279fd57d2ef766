"""The seek that ends a rebalance brings back records dropped meanwhile, also on a partition
the group never committed (real broker, aiokafka's own consumer; ``streams.input_gaps``
``SeekUncommittedToStart``).

faust drops records it fetched while a rebalance went on (their partition paused, the flow
stopped, the generation changed) and then seeks every partition to its committed offset so the
fetcher reads them again. aiokafka's ``seek_to_committed`` seeks only partitions committed
above 0: on one never committed, the dropped records were never handed again, and with no
later message the partition was never committed (the stall of the fault suite)."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.bench.stream_harness import StreamHarness
from schemas.config import Settings
from schemas.examples import example_event, example_uuid
from streams.input_gaps import SeekUncommittedToStart

CASES = 3


async def _handed_after_a_dropped_fetch(settings: Settings, topic: str,
                                        completed: bool) -> list[int]:
    """The offsets handed after a fetch whose records were dropped and the seek that ends a
    rebalance (aiokafka's alone, or completed)."""
    consumer = AIOKafkaConsumer(
        **settings.client.aiokafka(), group_id=f"test-seek-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False, auto_offset_reset="earliest",
    )
    await consumer.start()
    partition = TopicPartition(topic, 0)
    try:
        consumer.assign([partition])
        dropped: list[int] = []
        while len(dropped) < CASES:  # fetched, then dropped as faust does in a rebalance
            batch = await consumer.getmany(partition, timeout_ms=2000)
            dropped += [record.offset for record in batch.get(partition, [])]
        assert dropped == list(range(CASES))
        seek = consumer.seek_to_committed
        if completed:
            seek = SeekUncommittedToStart(consumer.seek_to_committed, consumer.seek_to_beginning,
                                          lambda: ())
        assert await seek() == {partition: None}
        handed: list[int] = []
        for _ in range(3):
            batch = await consumer.getmany(partition, timeout_ms=1000)
            handed += [record.offset for record in batch.get(partition, [])]
        return handed
    finally:
        await consumer.stop()


def test_records_dropped_before_the_seek_are_handed_again_on_a_partition_never_committed(
    stack: Settings,
) -> None:
    harness = StreamHarness(stack, agencies=("police-ctu",), entities=("case",),
                            partitions=1).setup()
    try:
        for number in range(CASES):
            harness.publish("case", example_event(
                "case", "police-ctu", f"C-{number}",
                event_id=example_uuid(f"seek:C-{number}")))
        harness.flush()
        topic = harness.agency_topic("police-ctu", "case")
        # aiokafka alone: nothing comes again, the partition's lag would stay for ever
        assert asyncio.run(_handed_after_a_dropped_fetch(stack, topic, completed=False)) == []
        assert asyncio.run(_handed_after_a_dropped_fetch(stack, topic, completed=True)) == [
            0, 1, 2]
    finally:
        harness.teardown()
