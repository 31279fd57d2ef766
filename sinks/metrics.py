"""Prometheus metrics of the sink, on their own registry (no process-wide globals).

``tipsync sink`` serves them on http://<address>:<port>/metrics (``config.METRICS_ADDRESS``,
loopback by default), the port from
``--metrics-port`` or ``config.SINK_METRICS_PORT`` (default 19101; 0 turns it off). The
names are the ones agreed in ``deploy/operations/metric_names.py`` and docs/OPERATIONS.md.

A batch is counted once, after its transaction commits: a batch retried after a failure, or
dropped because another sink took its partitions, adds nothing. The counts come from what
the writes report (``sinks.store.Written``), so the write path itself knows nothing of
Prometheus. Labels carry topics, entities, table names and reason codes only: never a
record id, never a value.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from schemas import config
from schemas.build_info import export_build_info
from sinks.batch import Message, PreparedBatch
from sinks.store import Written

log = logging.getLogger("tipsync.sink")

METRICS_PORT_VARIABLE = config.SINK_METRICS_PORT
DEFAULT_METRICS_PORT = config.DEFAULT_SINK_METRICS_PORT

# A batch of up to 50,000 messages takes from milliseconds (a trickle) to tens of seconds (a
# backlog on a busy machine; docs/BENCHMARKS.md).
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# The same buckets as the operator's tipsync_freshness_seconds (deploy/operations/
# freshness.py; a unit test keeps them equal), so the two histograms can be compared.
FRESHNESS_BUCKETS = (
    0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
)

def metrics_port(option: int | None, environ: Mapping[str, str]) -> int | None:
    """The sink's port: ``--metrics-port``, then ``config.SINK_METRICS_PORT``, then 19101;
    None when it is 0 (no endpoint)."""
    return config.sink_metrics_port(option, environ)


@dataclass(frozen=True)
class BatchReport:
    """What one committed batch did, as the metrics count it."""

    events_in: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (topic, entity)
    rows: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (entity, table)
    stale_dropped: Mapping[str, int] = field(default_factory=dict)  # entity
    dead_letters: Mapping[str, int] = field(default_factory=dict)  # reason code
    freshness: Mapping[str, Sequence[float]] = field(default_factory=dict)  # entity -> ages
    seconds: float = 0.0


def batch_report(
    messages: Iterable[Message],
    entity_of_topic: Mapping[str, str],
    prepared: PreparedBatch,
    written: Iterable[tuple[str, Written]],
    seconds: float,
    committed_at: float,
) -> BatchReport:
    """Count a committed batch: ``written`` is what each write reported (entity, counts),
    ``committed_at`` the commit time in seconds since the epoch. An event_time after the
    commit (an agency's clock ahead) counts as age 0 rather than a negative age."""
    events_in = Tally((message.topic, entity_of_topic[message.topic]) for message in messages)
    rows: Tally[tuple[str, str]] = Tally()
    stale: Tally[str] = Tally()
    freshness: dict[str, list[float]] = {}
    for entity, outcome in written:
        for table, count in outcome.rows.items():
            rows[(entity, table)] += count
        if entity in prepared.changes:
            stale[entity] += outcome.changes - outcome.accepted
        if outcome.event_times:
            freshness.setdefault(entity, []).extend(
                max(0.0, committed_at - event_time) for event_time in outcome.event_times
            )
    dead_letters = Tally(rejection.letter.reason for rejection in prepared.rejections)
    return BatchReport(
        events_in=dict(events_in),
        rows={key: count for key, count in rows.items() if count},
        stale_dropped={entity: count for entity, count in stale.items() if count},
        dead_letters=dict(dead_letters),
        freshness=freshness,
        seconds=seconds,
    )


@dataclass
class SinkMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.events_in = Counter(
            "tipsync_sink_events_in", "Reconciled events the sink read and committed.",
            ("topic", "entity"), registry=self.registry,
        )
        self.rows = Counter(
            "tipsync_sink_rows",
            "Rows inserted, updated or deleted in the reconciled store.",
            ("entity", "table"), registry=self.registry,
        )
        self.stale_dropped = Counter(
            "tipsync_sink_stale_dropped",
            "Changes not applied: the store holds an equal or newer golden_version.",
            ("entity",), registry=self.registry,
        )
        self.dead_letters = Counter(
            "tipsync_sink_dead_letters", "Messages sent to the sink's dead-letter topic.",
            ("reason",), registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "tipsync_sink_batch_seconds",
            "Time to write one batch and its offsets in one transaction, commit included.",
            buckets=BATCH_BUCKETS, registry=self.registry,
        )
        self.freshness_seconds = Histogram(
            "tipsync_sink_freshness_seconds",
            "Commit time minus the agency's event_time, per source record written.",
            ("entity",), buckets=FRESHNESS_BUCKETS, registry=self.registry,
        )
        export_build_info(self.registry, "sink")

    def record(self, report: BatchReport) -> None:
        for (topic, entity), count in report.events_in.items():
            self.events_in.labels(topic, entity).inc(count)
        for (entity, table), count in report.rows.items():
            self.rows.labels(entity, table).inc(count)
        for entity, count in report.stale_dropped.items():
            self.stale_dropped.labels(entity).inc(count)
        for reason, count in report.dead_letters.items():
            self.dead_letters.labels(reason).inc(count)
        self.batch_seconds.observe(report.seconds)
        for entity, ages in report.freshness.items():
            histogram = self.freshness_seconds.labels(entity)
            for age in ages:
                histogram.observe(age)

    def serve(self, port: int) -> Callable[[], None] | None:
        """Serve on http://<address>:<port>/metrics (``config.METRICS_ADDRESS``, loopback by
        default) from a daemon thread; returns how to stop it, or None when the port cannot
        be used (the sink then runs without an endpoint: writing the data matters more than
        counting it, and Prometheus shows the target down)."""
        address = config.metrics_address()
        try:
            server, thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as error:
            log.warning(
                "the sink's metrics endpoint cannot listen on %s:%d (%s); the sink runs"
                " without one. Give a free port with --metrics-port or %s, or 0 for none",
                address, port, error.strerror or error, METRICS_PORT_VARIABLE,
            )
            return None

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(5)

        return stop
