"""deploy/prometheus/alerts.yaml: well-formed rules that only use documented metric names."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from deploy.operations.metric_names import ALL, documented_series

RULES_FILE = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "alerts.yaml"
OPERATIONS_DOC = Path(__file__).resolve().parents[3] / "docs" / "OPERATIONS.md"
METRIC = re.compile(r"\btipsync_[a-z0-9_]+\b")


def rules() -> list[dict]:
    document = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_rule_has_a_name_an_expression_a_severity_and_a_runbook_link():
    for rule in rules():
        assert rule["alert"].startswith("Tipsync"), rule
        assert rule["expr"].strip(), rule
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule
        assert rule["annotations"]["runbook_url"].startswith("docs/OPERATIONS.md#"), rule


def test_expressions_only_use_documented_metric_names():
    documented = documented_series()
    used = {name for rule in rules() for name in METRIC.findall(rule["expr"])}
    assert used, "the rules use no tipsync metric at all"
    assert used <= documented, f"undocumented metrics in alerts.yaml: {used - documented}"


def test_rules_cover_lag_freshness_and_dead_letters():
    expressions = " ".join(rule["expr"] for rule in rules())
    for needed in ("tipsync_lag_status", "tipsync_lag_seconds", "tipsync_freshness_seconds",
                   "tipsync_stream_dead_letters_total"):
        assert needed in expressions


def test_every_runbook_anchor_exists_in_operations_doc():
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS_DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    for rule in rules():
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in headings, f"{rule['alert']}: no heading for #{anchor}"


def test_every_documented_metric_is_described_in_the_runbook():
    text = OPERATIONS_DOC.read_text(encoding="utf-8")
    missing = [metric.name for metric in ALL if metric.name not in text]
    assert not missing, f"docs/OPERATIONS.md does not describe {missing}"
