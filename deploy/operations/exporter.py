"""``tipsync monitor``: lag and freshness as Prometheus metrics, for dashboards and alerts.

Every ``every`` seconds it takes one lag sample of the pipeline's groups (judged over the same
history ``tipsync lag`` keeps) and polls the reconciled store for newly visible changes; the
metrics (names in :mod:`deploy.operations.metric_names`) are served on
``http://<address>:<port>/metrics`` (``config.METRICS_ADDRESS``, loopback by default). It also
exports each agency topic's activity (``deploy.operations.agency_activity``) and
``tipsync_build_info``. One process is enough for the whole platform.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator, Sequence

from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from deploy.operations.agency_activity import AgencyActivity, families, survey_agencies
from deploy.operations.freshness import FRESHNESS_BUCKETS, FreshnessWatcher
from deploy.operations.lag import GroupLag, Status, Thresholds
from deploy.operations.offsets import OperationsError
from deploy.operations.survey import survey_lag
from schemas import config
from schemas.build_info import export_build_info
from schemas.config import Settings
from schemas.topics import TOPICS, TopicNames


class LagCollector(Collector):
    """Serves the latest lag reports; a group or partition that disappears stops being
    exported instead of freezing at its last value."""

    def __init__(self) -> None:
        self._groups: Sequence[GroupLag] = ()
        self._lock = threading.Lock()

    def update(self, groups: Sequence[GroupLag]) -> None:
        with self._lock:
            self._groups = tuple(groups)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            groups = self._groups
        messages = GaugeMetricFamily(
            "tipsync_lag_messages", "End offset minus committed offset.",
            labels=("group", "topic", "partition"),
        )
        seconds = GaugeMetricFamily(
            "tipsync_lag_seconds", "Age of the oldest message not yet consumed.",
            labels=("group", "topic", "partition"),
        )
        group_status = GaugeMetricFamily(
            "tipsync_lag_status", "1 for the group's current status.", labels=("group", "status")
        )
        partition_status = GaugeMetricFamily(
            "tipsync_lag_partition_status", "1 for the partition's current status.",
            labels=("group", "topic", "partition", "status"),
        )
        for group in groups:
            for status in Status:
                group_status.add_metric(
                    [group.group, status.value], 1.0 if group.status is status else 0.0
                )
            for partition in group.partitions:
                labels = [group.group, partition.topic, str(partition.partition)]
                if partition.lag is not None:
                    messages.add_metric(labels, float(partition.lag))
                if partition.lag_seconds is not None:
                    seconds.add_metric(labels, partition.lag_seconds)
                for status in Status:
                    partition_status.add_metric(
                        [*labels, status.value], 1.0 if partition.status is status else 0.0
                    )
        yield from (messages, seconds, group_status, partition_status)


class AgencyCollector(Collector):
    """Serves the latest survey of the agency topics; an agency whose topics are gone stops
    being exported."""

    def __init__(self) -> None:
        self._activity: Sequence[AgencyActivity] = ()
        self._lock = threading.Lock()

    def update(self, activity: Sequence[AgencyActivity]) -> None:
        with self._lock:
            self._activity = tuple(activity)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            activity = self._activity
        yield from families(activity)  # type: ignore[misc]


class Monitor:
    def __init__(self, settings: Settings, groups: Sequence[str] = (), prefix: str = "",
                 thresholds: Thresholds | None = None, names: TopicNames = TOPICS) -> None:
        self.settings = settings
        self.groups = list(groups)
        self.prefix = prefix
        self.names = names
        self.thresholds = thresholds or Thresholds()
        self.registry = CollectorRegistry()
        self.lag = LagCollector()
        self.registry.register(self.lag)
        self.agencies = AgencyCollector()
        self.registry.register(self.agencies)
        export_build_info(self.registry, "monitor")
        self._admin: AdminClient | None = None
        self.freshness = Histogram(
            "tipsync_freshness_seconds",
            "Seconds from event_time at the agency to visible in PostgreSQL.",
            buckets=FRESHNESS_BUCKETS, registry=self.registry,
        )
        self.errors = Counter(
            "tipsync_operations_errors", "Monitor polls that failed.", ("source",),
            registry=self.registry,
        )
        self.last_poll = Gauge(
            "tipsync_operations_last_poll_timestamp_seconds",
            "When the monitor last finished a poll.", registry=self.registry,
        )
        self._watcher: FreshnessWatcher | None = None

    def poll(self) -> None:
        try:
            groups, warnings = survey_lag(
                self.settings, groups=self.groups, prefix=self.prefix, samples=1,
                thresholds=self.thresholds,
            )
            self.lag.update(groups)
            for warning in warnings:
                print(f"tipsync monitor: {warning}", file=sys.stderr)
        except OperationsError as error:
            self.errors.labels(source="kafka").inc()
            print(f"tipsync monitor: {error}", file=sys.stderr)
        try:
            if self._admin is None:
                self._admin = AdminClient(self.settings.client.librdkafka())
            self.agencies.update(survey_agencies(self._admin, self.names))
        except OperationsError as error:
            self.errors.labels(source="kafka").inc()
            print(f"tipsync monitor: {error}", file=sys.stderr)
        try:
            if self._watcher is None:
                self._watcher = FreshnessWatcher(self.settings.database_url)
            for age in self._watcher.poll():
                self.freshness.observe(max(age, 0.0))
        except Exception as error:  # noqa: BLE001 - PostgreSQL down must not end the monitor
            self.errors.labels(source="postgresql").inc()
            if self._watcher is not None:
                self._watcher.close()
            self._watcher = None
            print(f"tipsync monitor: freshness poll failed ({error}); retrying", file=sys.stderr)
        self.last_poll.set(time.time())

    def serve(self, port: int) -> str:
        """Serve the metrics on ``port`` of ``config.METRICS_ADDRESS``; returns the address."""
        address = config.metrics_address()
        start_http_server(port, addr=address, registry=self.registry)
        return address

    def run(self, every: float, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            self.poll()
            stop.wait(max(every - (time.monotonic() - started), 0.0))
        if self._watcher is not None:
            self._watcher.close()
