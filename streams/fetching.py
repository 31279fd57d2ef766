"""How long the broker may hold a stream worker's fetch: 100 ms instead of faust's 1.5 s.

faust 0.15.3 makes its worker's aiokafka consumer with ``fetch_max_wait_ms=1500`` (not a
setting). aiokafka 0.14 keeps one fetch in flight per broker, for every assigned partition
that has nothing waiting to be consumed: a fetch sent while a busy partition still had records
in hand names only the idle ones, the broker holds it the whole wait for want of data, and the
busy partition's next records wait behind it. Measured with ``tipsync bench e2e --people 2000
--steady-rate 100`` (split roles; docs/BENCHMARKS.md, session 8): resolve took its partition's
changes in bursts, p50 1.16 s from the resolve topic to its output; with 100 ms, 0.05 s.
Only the resolve worker (``--role resolve``, and so worker 0 of ``--role split``) fetches this
way: it holds a partition or two, so asking ten times a second costs little. Given to every
worker, the ingest workers' fetches (every agency partition, ten times a second) cost the
broker and the workers a third more CPU per change, which at 300 changes/s on two cores
turned into a queue (the same benchmark at 300/s: p99 8.9 s against 45 s).
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

FETCH_MAX_WAIT_MS = 100


class PromptConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):  # type: ignore[misc]
    """faust's consumer thread; its worker consumer's fetches wait ``FETCH_MAX_WAIT_MS``."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by aiokafka when the consumer starts and makes its fetcher (aiokafka 0.14)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class PromptConsumer(faust_aiokafka.Consumer):  # type: ignore[misc]
    """faust's aiokafka consumer with ``PromptConsumerThread``; ``StreamApp`` puts it on the
    app's transport before the consumer is made."""

    def _new_consumer_thread(self) -> PromptConsumerThread:
        return PromptConsumerThread(self, loop=self.loop, beacon=self.beacon)
