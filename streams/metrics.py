"""Prometheus counters of the stream app, on their own registry (no process-wide globals).

Served over HTTP on ``schemas.config.STREAM_METRICS_PORT`` (default 19100; worker ``i`` of
``tipsync stream --workers N`` uses port + i), on ``config.METRICS_ADDRESS`` (loopback by
default), with ``tipsync_build_info``. Labels carry agency ids, entities, stages and
reason codes only: never a record id, never personal data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from schemas import config
from schemas.build_info import export_build_info

DEFAULT_METRICS_PORT = config.DEFAULT_STREAM_METRICS_PORT
RESOLVE_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass
class StreamMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        def counter(name: str, documentation: str, labels: tuple[str, ...]) -> Counter:
            return Counter(
                f"tipsync_stream_{name}", documentation, labels, registry=self.registry
            )

        self.events_in = counter(
            "events_in", "Agency events read by ingest.", ("agency", "entity")
        )
        self.events_out = counter(
            "events_out",
            "Agency events ingest accepted and passed on (to resolve or a reconciled topic).",
            ("agency", "entity"),
        )
        self.resolve_outputs = counter(
            "resolve_outputs", "Messages resolve published, by output.", ("output",)
        )
        self.replays_dropped = counter(
            "replays_dropped",
            "Events dropped because the same agency and event_id were seen before.",
            ("agency", "entity"),
        )
        self.stale_dropped = counter(
            "stale_dropped",
            "Events dropped because a newer or equal source_version is already held.",
            ("agency", "entity"),
        )
        self.dead_letters = counter(
            "dead_letters", "Messages sent to a dead-letter topic.", ("stage", "reason")
        )
        self.match_decisions = counter(
            "match_decisions", "Match decisions published by resolve.", ("decision",)
        )
        self.merges = counter("merges", "Golden people merged into another one.", ())
        self.resolved = counter(
            "resolved", "Person and link events resolve processed.", ("entity",)
        )
        self.resolve_seconds = Histogram(
            "tipsync_stream_resolve_seconds",
            "Time resolve takes for one record: decode, resolve, publish its outputs.",
            buckets=RESOLVE_BUCKETS, registry=self.registry,
        )
        export_build_info(self.registry, "stream")

    def serve(self, port: int, address: str | None = None) -> None:
        """Expose the counters on http://<address>:<port>/metrics (a daemon thread); the
        address from ``config.METRICS_ADDRESS`` (loopback by default) unless given."""
        start_http_server(port, addr=address or config.metrics_address(), registry=self.registry)
