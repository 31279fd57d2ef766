"""Fault injection on the real local stack (issue 13): ``tipsync bench faults`` at a modest
size. During the backfill of a synthetic task force the stream worker, the sink and the
producers are killed with SIGKILL (whole process groups) and started again, and the Kafka
broker and PostgreSQL are restarted; at the end every published source record is in the
reconciled store exactly once at its latest version, and the people are clustered as an
undisturbed run clusters them (docs/OPERATIONS.md "What survives what").

It runs on a private stack of its own (port base 28000; the benchmark's default is 26000),
which it starts, wipes and stops: a few minutes, so it is marked ``faults`` and runs under
``make faults``, which ``.ci/run`` runs after ``make test``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from schemas.config import Settings

pytestmark = pytest.mark.faults

PORTS = {"--kafka-port": "28092", "--registry-port": "28081", "--postgres-port": "28032"}
PEOPLE = 150
KILLS = 8
RESTARTS = 2  # the broker once, PostgreSQL once
SEED = 13


@pytest.mark.timeout(1000)
def test_kills_and_restarts_during_a_backfill_lose_nothing_duplicate_nothing_cluster_the_same(
    settings: Settings,
) -> None:
    # Inside the shared state folder, made 0700 as mkdtemp makes it: the command lets
    # PostgreSQL's unprivileged user traverse it (as it must for its default --home).
    home = Path(tempfile.mkdtemp(prefix="bench-faults-test-", dir=settings.home))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "bench", "faults", "--people", str(PEOPLE),
             "--kills", str(KILLS), "--restarts", str(RESTARTS), "--seed", str(SEED),
             "--home", str(home),
             *(item for pair in PORTS.items() for item in pair)],
            capture_output=True, text=True, timeout=900,
            env={**os.environ, "TIPSYNC_CACHE": str(settings.cache)},
        )
        # Stopped and wiped: nothing of the private stack keeps running.
        assert not (home / "stack" / "run").exists()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    output = result.stdout
    print(output)  # the figures (pytest -s or -rP shows them)
    assert result.stdout.strip(), result.stderr[-3000:]
    figures = json.loads(output.strip().splitlines()[-1])
    assert figures["kills_total"] == KILLS, output
    assert figures["restarts"] == {"kafka": 1, "postgres": 1}, output
    assert figures["published"] > PEOPLE, output
    assert figures["lost"] == 0, output
    assert figures["duplicated"] == 0, output
    assert figures["cluster_differences"] == 0, output
    # the worker never holds its partitions without committing (docs/OPERATIONS.md, "Stalls");
    # processes that exit by themselves after a restart are started again and counted
    # (``exits_after_restart``: producers while the broker is away, once the sink)
    assert figures["stalled_stream_restarts"] == 0, output
    assert result.returncode == 0, output + result.stderr[-3000:]
