"""How long the broker may hold a stream worker's fetch, and for how many bytes.

faust 0.15.3 makes its worker's aiokafka consumer with ``fetch_max_wait_ms=1500`` and
aiokafka's ``fetch_min_bytes=1`` (neither a setting). aiokafka 0.14 keeps one fetch in flight
per broker, for every assigned partition that has nothing waiting to be consumed, and sends no
fetch sessions (KIP-227): each fetch names every such partition, and the broker answers with an
entry for each. Two consequences, one per role:

- **resolve** (``--role resolve``, worker 0 of ``split``): a fetch sent while its busy
  partition still had records in hand names only the idle ones, the broker holds it the whole
  wait for want of data, and the busy partition's next records wait behind it. Measured with
  ``tipsync bench e2e --people 2000 --steady-rate 100`` (split; docs/BENCHMARKS.md, session
  8): resolve took its partition's changes in bursts, p50 1.16 s from the resolve topic to its
  output; with a 100 ms wait, 0.05 s. It holds a partition or two, so asking ten times a
  second costs little.
- **ingest** (``--role ingest``, ``all``): the worker holds every agency partition (12
  agencies x 5 entities x 6 partitions at bench e2e), so each fetch is ~430 partitions both
  ways, parsed in pure Python. Answered at the first byte, a steady flow made 12-41 such
  fetches a second (bench e2e at 300 changes/s, Kafka's request log), a quarter of the ingest
  worker's CPU in aiokafka's decoding. The broker holds its fetches until ``INGEST_MIN_BYTES``
  have arrived or ``FETCH_MAX_WAIT_MS`` passed: at most ten a second, and a change waits at
  most that long for its fetch (and no more behind a held one, which faust's 1.5 s allowed).
  Every worker at 100 ms with the first byte answering cost a third more CPU per change
  (session 8); the bytes are what makes the ingest wait pay.

The same consumer thread also keeps a commit that meets a re-subscription from crashing the
worker (``PromptConsumerThread._commit``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

FETCH_MAX_WAIT_MS = 100
# an ingest fetch returns early once this much has arrived (bench e2e's person events are
# ~0.5 KiB: a fetch of ~100 of them, or whatever came in FETCH_MAX_WAIT_MS)
INGEST_MIN_BYTES = 64 * 1024


class PromptConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):  # type: ignore[misc]
    """faust's consumer thread; its worker consumer's fetches wait ``FETCH_MAX_WAIT_MS`` and
    return at the first byte."""

    min_bytes = 1

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by aiokafka when the consumer starts and makes its fetcher (aiokafka 0.14)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        consumer._fetch_min_bytes = self.min_bytes
        return consumer

    async def _commit(self, offsets: Mapping[Any, int]) -> bool:
        # Discovery re-subscribes when agency topics appear; until the rebalance that follows
        # assigns partitions again, aiokafka holds no assignment and its commit raises
        # IllegalStateError("No partitions assigned"), which faust's turns into a crash of
        # the worker (tests/integration/test_stream_workers.py, once: a periodic commit
        # landed in that window). Nothing is assigned, so nothing can be committed: the
        # offsets go with a later commit, and at worst their inputs are processed again
        # (at-least-once), as faust does for a commit that meets a rebalance.
        if not self._ensure_consumer().assignment():
            return False
        return bool(await super()._commit(offsets))


class GatheringConsumerThread(PromptConsumerThread):
    """The same, but a fetch returns early only once ``INGEST_MIN_BYTES`` are there."""

    min_bytes = INGEST_MIN_BYTES


class PromptConsumer(faust_aiokafka.Consumer):  # type: ignore[misc]
    """faust's aiokafka consumer with ``PromptConsumerThread`` (the resolve worker);
    ``StreamApp`` puts it on the app's transport before the consumer is made."""

    thread_class: type[PromptConsumerThread] = PromptConsumerThread

    def _new_consumer_thread(self) -> PromptConsumerThread:
        return self.thread_class(self, loop=self.loop, beacon=self.beacon)


class GatheringConsumer(PromptConsumer):
    """The same with ``GatheringConsumerThread`` (workers that ingest)."""

    thread_class = GatheringConsumerThread


def consumer_for(role: str) -> type[faust_aiokafka.Consumer]:
    """The consumer class of a worker of ``role`` (``resolve``, ``ingest`` or ``all``)."""
    return PromptConsumer if role == "resolve" else GatheringConsumer
