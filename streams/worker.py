"""Running one stream worker process: its internal topics first, then faust's worker, with a
hard exit when faust's shutdown hangs.
"""

from __future__ import annotations

import faulthandler
import logging
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import faust
from confluent_kafka.admin import AdminClient
from faust.types import TopicT
from mode.utils.times import want_seconds

from schemas.client_config import ClientConfig
from schemas.topics import TopicSettings, TopicSpec, compacted_config, create_topics
from streams.agent_guard import exit_hard_after_grace

if TYPE_CHECKING:
    from streams.app import StreamApp

log = logging.getLogger("tipsync.streams")

# How long a worker may take to stop after SIGTERM / SIGINT (or a crash: streams.agent_guard)
# before it exits hard. Faust's shutdown now and then waits forever on one of its own threads
# (seen in tests/integration/test_stream_workers.py, before and after our changes); a hard exit
# then is safe: processing is at-least-once, so events not yet committed are processed again on
# restart and the ingest table drops them as replays.


class _Worker(faust.Worker):
    def _on_sigint(self) -> None:
        self._exit_hard_after_grace("SIGINT")
        super()._on_sigint()

    def _on_sigterm(self) -> None:
        self._exit_hard_after_grace("SIGTERM")
        super()._on_sigterm()

    @staticmethod
    def _exit_hard_after_grace(signal_name: str) -> None:
        exit_hard_after_grace(f"{signal_name} (uncommitted events are processed again on "
                              "restart and dropped as replays)", code=0)

    def _setup_logging(self) -> None:
        super()._setup_logging()
        # mode leaves the root logger at DEBUG and filters in the handler, so every debug
        # call of aiokafka and faust builds a record first: ~15% of ingest's time.
        level = self.loglevel or logging.WARNING
        logging.getLogger().setLevel(level.upper() if isinstance(level, str) else level)


def ensure_internal_topics(topics: Iterable[TopicT], default_partitions: int,
                           bootstrap: str | ClientConfig,
                           timeout: float = 60.0) -> None:
    """Create the topics faust would declare (table changelog, resolve, outputs, dead letters)
    and wait until the broker's metadata shows them, before the worker starts.

    Left to faust on a fresh broker, the changelog topic is created while the worker already
    consumes, the worker's metadata still says it has 0 partitions for minutes, and the
    ingest agent crashes with PartitionsMismatch on the events it was processing — which faust
    has already acknowledged, so they never reached the store (found by `tipsync bench e2e`).
    """
    replication = TopicSettings.from_environment().replication_factor
    plan = []
    for topic in topics:
        config = dict(compacted_config()) if topic.compacting else {}
        if topic.retention is not None and not topic.compacting:
            config["retention.ms"] = str(int(want_seconds(topic.retention) * 1000))
        config.update({key: str(value) for key, value in (topic.config or {}).items()})
        plan.append(TopicSpec(topic.get_topic_name(), topic.partitions or default_partitions,
                              replication, config))
    create_topics(bootstrap, plan)
    admin = AdminClient(ClientConfig.of(bootstrap).librdkafka())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=10).topics
        if all(spec.name in metadata and len(metadata[spec.name].partitions) == spec.partitions
               for spec in plan):
            return
        time.sleep(0.5)
    raise RuntimeError(
        f"the stream app's internal topics did not appear on {bootstrap} within {timeout:.0f}s:"
        f" {', '.join(sorted(spec.name for spec in plan))}"
    )


def run_worker(stream_app: StreamApp) -> None:
    """Run one faust worker until SIGINT or SIGTERM (then it stops cleanly and returns)."""
    stream_app.data_dir.mkdir(parents=True, exist_ok=True)
    # A crash in native code (seen once: the worker died of SIGSEGV while the broker
    # restarted, in the fault suite) leaves the stacks of every thread in the worker's log.
    faulthandler.enable()
    ensure_internal_topics(stream_app.internal_topics(), stream_app.partitions,
                           stream_app.settings.client)
    # faust polls Kafka in a thread of its own; with the default 5 ms switch interval the
    # event loop waits up to 5 ms for the GIL after each socket write to the broker.
    sys.setswitchinterval(0.0005)
    worker = _Worker(stream_app.app, loglevel=stream_app.options.loglevel, quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise
