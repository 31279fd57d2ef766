"""The stream worker's consumer: fetches the broker may hold 100 ms, not faust's 1.5 s,
answered at the first byte for resolve and at 64 KiB for a worker that ingests
(streams/fetching.py). No Kafka: faust's own method is replaced by a stand-in."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.fetching import (
    FETCH_MAX_WAIT_MS,
    INGEST_MIN_BYTES,
    GatheringConsumer,
    GatheringConsumerThread,
    PromptConsumer,
    PromptConsumerThread,
    consumer_for,
)


@pytest.mark.parametrize(("thread_class", "min_bytes"), [
    (PromptConsumerThread, 1), (GatheringConsumerThread, INGEST_MIN_BYTES),
], ids=["resolve", "ingest"])
def test_the_worker_consumer_fetches_wait_at_most_100_ms(
    monkeypatch: Any, thread_class: type, min_bytes: int
):
    made = SimpleNamespace(_fetch_max_wait_ms=1500, _fetch_min_bytes=1)
    monkeypatch.setattr(faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer",
                        lambda self, transport: made)
    thread = thread_class.__new__(thread_class)
    assert thread._create_worker_consumer(transport=None) is made
    assert made._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 100
    assert made._fetch_min_bytes == min_bytes


def test_each_role_gets_its_consumer():
    assert consumer_for("resolve") is PromptConsumer
    # a worker holding agency partitions (every one of them, at one worker) gathers
    assert consumer_for("ingest") is GatheringConsumer
    assert consumer_for("all") is GatheringConsumer


def test_faust_still_makes_its_consumer_this_way():
    # what the override relies on, in the pinned faust and aiokafka: a hook that returns the
    # AIOKafkaConsumer before it starts, and the attributes its fetcher is made from
    for consumer_class in (PromptConsumer, GatheringConsumer):
        assert (consumer_class._new_consumer_thread
                is not faust_aiokafka.Consumer._new_consumer_thread)
    assert hasattr(faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer")
    import asyncio

    import aiokafka

    async def made() -> tuple[int, int]:
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1",
                                             fetch_max_wait_ms=7, fetch_min_bytes=9)
        return int(consumer._fetch_max_wait_ms), int(consumer._fetch_min_bytes)

    assert asyncio.run(made()) == (7, 9)


def test_a_commit_while_no_partition_is_assigned_commits_nothing_and_does_not_crash(
    monkeypatch: Any,
):
    # between a re-subscription (discovery found agency topics) and the rebalance's new
    # assignment, aiokafka's commit raises and faust crashes the worker
    committed: list[Any] = []

    async def faust_commit(self: Any, offsets: Any) -> bool:
        committed.append(offsets)
        return True

    monkeypatch.setattr(faust_aiokafka.AIOKafkaConsumerThread, "_commit", faust_commit)
    thread = PromptConsumerThread.__new__(PromptConsumerThread)
    assignment: set[Any] = set()
    thread._ensure_consumer = lambda: SimpleNamespace(assignment=lambda: assignment)

    import asyncio

    assert asyncio.run(thread._commit({"tp": 5})) is False
    assert committed == []
    assignment.add("tp")
    assert asyncio.run(thread._commit({"tp": 5})) is True
    assert committed == [{"tp": 5}]
