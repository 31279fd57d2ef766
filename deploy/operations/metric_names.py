"""The agreed Prometheus metric names of tipsync: one list for the runbook, the alerting
rules (a test checks every rule only uses names from here) and the scrape test.

Each process defines its own metrics (the stream app in ``streams/metrics.py``, the sink in
its own module, the operator's exporter in ``deploy/operations/exporter.py``), so no package
imports another against the data flow; this module only records what they agreed to expose.
Labels carry agency ids, entities, stages, topics, groups and reason codes, never a record id
or anything personal.

Counters are exposed with the ``_total`` suffix, histograms as ``_bucket``/``_sum``/
``_count`` series: the names below are the exposed ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import build_info


@dataclass(frozen=True)
class MetricName:
    name: str
    kind: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    meaning: str
    process: str  # stream | sink | operations | every

    def series(self) -> tuple[str, ...]:
        """The names Prometheus stores for this metric."""
        if self.kind == "histogram":
            return tuple(f"{self.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        return (self.name,)


# Served by every process with a metrics endpoint (schemas/build_info.py): value 1.
BUILD_INFO = MetricName(
    build_info.METRIC, "gauge", build_info.LABELS,
    "what the process runs: tipsync's version and commit, Python, confluent-kafka, librdkafka"
    " and faust versions (value 1)", "every",
)

STREAM = (
    BUILD_INFO,
    MetricName("tipsync_stream_events_in_total", "counter", ("agency", "entity"),
               "agency events read by ingest", "stream"),
    MetricName("tipsync_stream_events_out_total", "counter", ("agency", "entity"),
               "agency events ingest accepted (new, not a replay, not stale) and passed on",
               "stream"),
    MetricName("tipsync_stream_resolve_outputs_total", "counter", ("output",),
               "messages resolve published, by output (person, mapping, link, ...)", "stream"),
    MetricName("tipsync_stream_replays_dropped_total", "counter", ("agency", "entity"),
               "events dropped: the same agency and event_id was seen before", "stream"),
    MetricName("tipsync_stream_stale_dropped_total", "counter", ("agency", "entity"),
               "events dropped: a newer or equal source_version is already held", "stream"),
    MetricName("tipsync_stream_dead_letters_total", "counter", ("stage", "reason"),
               "messages sent to a tip.dlq.* topic, by stage and reason code", "stream"),
    MetricName("tipsync_stream_match_decisions_total", "counter", ("decision",),
               "match decisions published by resolve (MATCH, NON_MATCH, REVIEW)", "stream"),
    MetricName("tipsync_stream_merges_total", "counter", (),
               "golden people merged into another one", "stream"),
    MetricName("tipsync_stream_resolved_total", "counter", ("entity",),
               "person and link events resolve processed", "stream"),
    MetricName("tipsync_stream_resolve_seconds", "histogram", (),
               "time resolve takes for one record: decode, resolve, publish its outputs",
               "stream"),
)

# Served by the sink (sinks/metrics.py) on schemas.config.SINK_METRICS_PORT.
SINK = (
    BUILD_INFO,
    MetricName("tipsync_sink_events_in_total", "counter", ("topic", "entity"),
               "reconciled events the sink read and committed", "sink"),
    MetricName("tipsync_sink_rows_total", "counter", ("entity", "table"),
               "rows written (inserted, updated or deleted) in the reconciled store", "sink"),
    MetricName("tipsync_sink_stale_dropped_total", "counter", ("entity",),
               "changes not applied: the store holds an equal or newer golden_version", "sink"),
    MetricName("tipsync_sink_dead_letters_total", "counter", ("reason",),
               "messages sent to tip.dlq.sink, by reason code", "sink"),
    MetricName("tipsync_sink_batch_seconds", "histogram", (),
               "time to write one batch and its offsets in one transaction, commit included",
               "sink"),
    MetricName("tipsync_sink_freshness_seconds", "histogram", ("entity",),
               "commit time minus event_time of each source record written", "sink"),
)

OPERATIONS = (
    BUILD_INFO,
    MetricName("tipsync_lag_messages", "gauge", ("group", "topic", "partition"),
               "end offset minus committed offset (Kafka's, or the sink's in PostgreSQL)",
               "operations"),
    MetricName("tipsync_lag_seconds", "gauge", ("group", "topic", "partition"),
               "age of the oldest message not yet consumed (0 when caught up)", "operations"),
    MetricName("tipsync_lag_status", "gauge", ("group", "status"),
               "1 for the group's current Burrow-style status, 0 for the others",
               "operations"),
    MetricName("tipsync_lag_partition_status", "gauge", ("group", "topic", "partition", "status"),
               "1 for the partition's current status, 0 for the others", "operations"),
    MetricName("tipsync_freshness_seconds", "histogram", (),
               "event_time at the agency to visible in PostgreSQL, per source record change",
               "operations"),
    MetricName("tipsync_operations_errors_total", "counter", ("source",),
               "monitor polls that failed (kafka, postgresql)", "operations"),
    MetricName("tipsync_operations_last_poll_timestamp_seconds", "gauge", (),
               "when the monitor last finished a poll (seconds since the epoch)", "operations"),
    MetricName("tipsync_agency_messages_total", "counter", ("agency", "entity"),
               "messages an agency has published on its topic (the sum of its end offsets):"
               " its rate is the agency's throughput", "operations"),
    MetricName("tipsync_agency_last_message_timestamp_seconds", "gauge", ("agency", "entity"),
               "when the agency last published on its topic (largest record timestamp)",
               "operations"),
)

ALL = STREAM + SINK + OPERATIONS


def documented_series() -> frozenset[str]:
    """Every series name a rule or dashboard may use."""
    return frozenset(series for metric in ALL for series in metric.series())
