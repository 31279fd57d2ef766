"""deploy/grafana/: the dashboard's every query names metrics tipsync's processes really
serve (collected from the stream's, the sink's and the monitor's own registries, and listed
in metric_names.py), its sections cover lag, freshness, throughput, dead letters and agencies,
and the provisioning file loads it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from deploy.operations.exporter import Monitor
from deploy.operations.metric_names import documented_series
from schemas.config import load_settings
from sinks.metrics import SinkMetrics
from streams.metrics import StreamMetrics

GRAFANA = Path(__file__).resolve().parents[3] / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "tipsync-operations.json"
PROVISIONING = GRAFANA / "provisioning" / "dashboards" / "tipsync.yaml"
METRIC = re.compile(r"\btipsync_[a-z0-9_]+\b")
# Prometheus's own series of every scrape target
PROMETHEUS_SERIES = {"up"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def served_series() -> set[str]:
    """Every series name the three processes' registries expose."""
    registries = [StreamMetrics().registry, SinkMetrics().registry,
                  Monitor(load_settings({})).registry]
    return {family.name + suffix for registry in registries for family in registry.collect()
            for suffix in SUFFIXES[family.type]}


def panels() -> list[dict[str, Any]]:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [panel for panel in document["panels"] if panel["type"] != "row"]


def test_every_query_names_only_metrics_tipsync_serves() -> None:
    served, documented = served_series(), documented_series()
    assert "tipsync_build_info" in served and "tipsync_agency_messages_total" in served
    for panel in panels():
        assert panel["targets"], f"panel '{panel['title']}' has no query"
        for target in panel["targets"]:
            names = set(METRIC.findall(target["expr"]))
            others = PROMETHEUS_SERIES & set(re.findall(r"\b[a-z_]+\b(?=\{|\s|$)",
                                                        target["expr"]))
            assert names or others, f"'{panel['title']}': {target['expr']} names no metric"
            assert names <= served, f"'{panel['title']}' uses {names - served}, not served"
            assert names <= documented, f"'{panel['title']}': {names - documented} undocumented"


def test_the_dashboard_covers_lag_freshness_throughput_dead_letters_and_agencies() -> None:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    rows = {panel["title"] for panel in document["panels"] if panel["type"] == "row"}
    assert {"Lag", "Freshness", "Throughput", "Dead letters", "Agencies"} <= rows
    expressions = " ".join(t["expr"] for panel in panels() for t in panel["targets"])
    for needed in ("tipsync_lag_seconds", "tipsync_freshness_seconds_bucket",
                   "tipsync_stream_events_in_total", "tipsync_sink_rows_total",
                   "tipsync_stream_dead_letters_total", "tipsync_sink_dead_letters_total",
                   "tipsync_agency_messages_total",
                   "tipsync_agency_last_message_timestamp_seconds", "up{"):
        assert needed in expressions, needed


def test_panels_have_unique_ids_and_places_and_read_the_chosen_prometheus() -> None:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    assert document["uid"] == "tipsync-operations"
    assert [variable["name"] for variable in document["templating"]["list"]] == ["datasource"]
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}"


def test_the_provisioning_file_names_a_file_provider() -> None:
    provisioning = yaml.safe_load(PROVISIONING.read_text(encoding="utf-8"))
    [provider] = provisioning["providers"]
    assert provisioning["apiVersion"] == 1
    assert provider["type"] == "file" and provider["options"]["path"]
