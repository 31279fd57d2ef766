"""Operator signals without a network: the metrics address setting, tipsync_build_info from
every process, and ``tipsync lag --fail-on``'s choice of groups."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from deploy.operations.exporter import Monitor
from deploy.operations.lag import GroupLag, PartitionLag, Status, failing
from schemas import config
from schemas.build_info import LABELS, build_info
from schemas.config import load_settings
from sinks.metrics import SinkMetrics
from streams.metrics import StreamMetrics


def test_the_metrics_address_is_loopback_unless_set_and_must_be_an_ip_address() -> None:
    assert config.metrics_address({}) == "127.0.0.1"
    assert config.metrics_address({config.METRICS_ADDRESS: "0.0.0.0"}) == "0.0.0.0"
    assert config.metrics_address({config.METRICS_ADDRESS: "::"}) == "::"
    with pytest.raises(ValueError, match="TIPSYNC_METRICS_ADDRESS='metrics.local' is not an IP"):
        config.metrics_address({config.METRICS_ADDRESS: "metrics.local"})


@pytest.mark.parametrize("process, registry", [
    ("stream", lambda: StreamMetrics().registry),
    ("sink", lambda: SinkMetrics().registry),
    ("monitor", lambda: Monitor(load_settings({})).registry),
])
def test_every_process_serves_its_build_info(process: str, registry) -> None:  # type: ignore[no-untyped-def]
    text = generate_latest(registry()).decode()
    [line] = [line for line in text.splitlines() if line.startswith("tipsync_build_info{")]
    assert f'process="{process}"' in line and line.endswith(" 1.0")
    info = build_info(process)
    assert tuple(info) == LABELS
    assert info["confluent_kafka"] and info["librdkafka"] and info["python"].count(".") == 2
    assert info["version"] != "" and info["faust"] != ""


def group(name: str, status: Status) -> GroupLag:
    partition = PartitionLag("t", 0, 10, 5, 5, 1.0, None, status, "")
    return GroupLag(name, "kafka", "STABLE", 1, (partition,))


def test_fail_on_picks_the_groups_at_that_status_or_worse() -> None:
    groups = [group("ok", Status.OK), group("stalled", Status.STALL),
              group("stopped", Status.STOP), group("warned", Status.WARN)]
    assert [g.group for g in failing(groups, Status.STALL)] == ["stalled", "stopped"]
    assert [g.group for g in failing(groups, Status.STOP)] == ["stopped"]
    assert failing([group("ok", Status.OK)], Status.WARN) == []
