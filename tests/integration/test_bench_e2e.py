"""``tipsync bench e2e`` end to end on a tiny task force: a smoke test of the command.

It starts its own private stack (own state folder and ports, the shared download cache),
runs both phases and stops it. No threshold on speed: a benchmark prints figures, the test
checks that the figures are there and add up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from deploy.bench.e2e_resolver import OUTSIDE_STREAM
from schemas.config import Settings

# Below Linux's ephemeral port range, and apart from the benchmark's own default ports and
# the private stack of test_stack.py, so the three can run side by side.
PORTS = {"--kafka-port": "31092", "--registry-port": "31081", "--postgres-port": "31432"}


def test_bench_e2e_prints_backfill_and_freshness_figures(settings: Settings) -> None:
    # Inside the shared state folder: PostgreSQL's unprivileged user can traverse it.
    home = Path(tempfile.mkdtemp(prefix="bench-e2e-test-", dir=settings.home))
    home.chmod(0o755)  # the private stack's folder is inside it, and mkdtemp makes it 0700
    try:
        result = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "bench", "e2e", "--people", "200",
             "--steady-rate", "50", "--steady-seconds", "10", "--home", str(home),
             *(item for pair in PORTS.items() for item in pair)],
            capture_output=True, text=True, timeout=600,
            env={**os.environ, "TIPSYNC_CACHE": str(settings.cache)},
        )
        assert result.returncode == 0, result.stderr[-3000:]
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        # Stopped and wiped: nothing of the private stack keeps running.
        assert not (home / "stack" / "run").exists()
    finally:
        shutil.rmtree(home, ignore_errors=True)

    backfill = figures["backfill"]
    assert backfill["person_records_published"] > 300  # ~1.9 records for each of 200 people
    assert backfill["person_records_visible"] == backfill["person_records_published"]
    assert backfill["events_published"] >= backfill["person_records_published"]
    assert backfill["seconds"] > 0 and backfill["events_per_second"] > 0
    assert 0 < backfill["producer_seconds"] <= backfill["seconds"]

    steady = figures["steady"]
    assert steady["published"] == 500 and steady["acknowledged"] == 500
    assert steady["measured"] + steady["not_visible"] == 500
    assert steady["measured"] > 0
    assert steady["visibility"] == "commit timestamp"  # a fresh stack tracks commit times
    assert 0 <= steady["p50_seconds"] <= steady["p99_seconds"] <= steady["max_seconds"]
    assert figures["machine"]["nproc"] >= 1

    # The resolver in-process on the records the producers published, and the ratio.
    resolver = figures["resolver"]
    assert resolver["person_records"] == backfill["person_records_published"]
    assert resolver["records_per_second"] > 0 and resolver["records_per_cpu_second"] > 0
    assert figures["pipeline_over_resolver"] == round(
        backfill["person_records_per_second"] / resolver["records_per_second"], 3)

    # The backfill's ceiling: the parts outside the stream app as measured, plus the resolver.
    ceiling = figures["backfill_ceiling"]
    cpu = backfill["cpu"]
    outside = sum(cpu[part]["ms_per_change"] for part in OUTSIDE_STREAM if part in cpu)
    assert abs(ceiling["outside_stream_ms_per_record"] - outside) < 0.01
    assert ceiling["outside_stream_ms_per_record"] > 0 and ceiling["stream_ms_per_record"] > 0
    assert ceiling["cores"] == figures["machine"]["nproc"]
    assert ceiling["pipeline_over_resolver"] > 0
