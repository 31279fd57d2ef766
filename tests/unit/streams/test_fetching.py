"""The stream worker's consumer: fetches the broker may hold 100 ms, not faust's 1.5 s
(streams/fetching.py). No Kafka: faust's own method is replaced by a stand-in."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.fetching import FETCH_MAX_WAIT_MS, PromptConsumer, PromptConsumerThread


def test_the_worker_consumer_fetches_wait_at_most_100_ms(monkeypatch: Any):
    made = SimpleNamespace(_fetch_max_wait_ms=1500)
    monkeypatch.setattr(faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer",
                        lambda self, transport: made)
    thread = PromptConsumerThread.__new__(PromptConsumerThread)
    assert thread._create_worker_consumer(transport=None) is made
    assert made._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 100


def test_faust_still_makes_its_consumer_this_way():
    # what the override relies on, in the pinned faust and aiokafka: a hook that returns the
    # AIOKafkaConsumer before it starts, and the attribute its fetcher is made from
    assert PromptConsumer._new_consumer_thread is not faust_aiokafka.Consumer._new_consumer_thread
    assert hasattr(faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer")
    import asyncio

    import aiokafka

    async def made() -> int:
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1",
                                             fetch_max_wait_ms=7)
        return int(consumer._fetch_max_wait_ms)

    assert asyncio.run(made()) == 7
