"""``bench e2e``'s backfill ceiling (deploy/bench/e2e_resolver.py ``backfill_ceiling``): what
the parts outside the stream app leave of the machine's cores for the stream app."""

from __future__ import annotations

from typing import Any

import pytest

from deploy.bench.e2e_resolver import backfill_ceiling


def row(ms: float) -> dict[str, Any]:
    return {"cpu_seconds": ms * 40.0, "ms_per_change": ms, "cores": None}


# A backfill's CPU figures as cpu_time.phase_figures gives them (40,000 records).
CPU = {
    "stream": row(0.0), "stream resolve": row(1.0), "stream ingest": row(0.3),
    "sink": row(0.35), "kafka": row(0.85), "registry": row(0.05), "postgresql": row(0.35),
    "producers": row(0.5), "bench": row(0.2), "other": row(0.4),
    "cores": 1.96, "cpu_seconds": 180.0, "wall_seconds": 70.0, "changes": 40_000,
}
RESOLVER = {"records_per_second": 2_500.0, "records_per_cpu_second": 2_500.0}


def test_the_ceiling_spreads_the_work_outside_the_stream_app_and_the_resolver_over_the_cores(
) -> None:
    ceiling = backfill_ceiling(CPU, RESOLVER, 2)
    assert ceiling is not None
    # the benchmark's own process and the rest of the machine are not the pipeline's work
    assert ceiling["outside_stream_ms_per_record"] == pytest.approx(2.1)
    assert ceiling["stream_ms_per_record"] == pytest.approx(1.3)
    assert ceiling["resolver_ms_per_record"] == pytest.approx(0.4)
    # 2 cores = 2,000 ms of CPU a second, 2.5 ms a record at best: 800 records/s
    assert ceiling["records_per_second"] == pytest.approx(800.0)
    assert ceiling["pipeline_over_resolver"] == pytest.approx(0.32)


def test_more_cores_raise_the_ceiling_in_proportion() -> None:
    two, four = backfill_ceiling(CPU, RESOLVER, 2), backfill_ceiling(CPU, RESOLVER, 4)
    assert two is not None and four is not None
    assert four["records_per_second"] == pytest.approx(2 * two["records_per_second"])


@pytest.mark.parametrize("cpu, resolver", [
    ({}, RESOLVER),  # no /proc: no CPU figures
    (CPU, {"records_per_second": None, "records_per_cpu_second": None}),
])
def test_no_ceiling_without_the_figures_it_is_made_of(cpu: dict[str, Any],
                                                      resolver: dict[str, Any]) -> None:
    assert backfill_ceiling(cpu, resolver, 2) is None
