"""``tipsync bench er --through-pipeline`` on a FEBRL sample: a smoke test of the command.

It starts its own private stack (own state folder and ports, the shared download cache),
publishes the sample through producer, Kafka, stream app and sink, and stops the stack. No
threshold on speed: a benchmark prints figures; the test checks that they are there and
plausible.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from schemas.config import Settings

# Port base 32100: apart from the benchmark's own default ports (32092, 32081, 32032), so
# the test and a run of the benchmark can go side by side; below the ephemeral port range.
PORTS = {"--kafka-port": "32192", "--registry-port": "32181", "--postgres-port": "32132"}
SAMPLE_RECORDS = 400
ROW = re.compile(r"^(tipsync-pipeline|tipsync)\s+(\d\.\d{4})\s+(\d\.\d{4})\s+(\d\.\d{4})\s",
                 re.MULTILINE)


def test_bench_er_through_the_pipeline_prints_plausible_figures(settings: Settings) -> None:
    # Inside the shared state folder: PostgreSQL's unprivileged user can traverse it.
    home = Path(tempfile.mkdtemp(prefix="bench-er-test-", dir=settings.home))
    home.chmod(0o755)  # mkdtemp makes it private to us; PostgreSQL's user must traverse it
    try:
        result = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "bench", "er", "--dataset", "febrl4",
             "--sample", str(SAMPLE_RECORDS), "--through-pipeline", "--without-splink",
             "--home", str(home), *(item for pair in PORTS.items() for item in pair)],
            capture_output=True, text=True, timeout=900,
            env={**os.environ, "TIPSYNC_CACHE": str(settings.cache)},
        )
        assert result.returncode == 0, (result.stderr or result.stdout)[-3000:]
        # Stopped and wiped: nothing of the private stack keeps running.
        assert not (home / "stack" / "run").exists()
    finally:
        shutil.rmtree(home, ignore_errors=True)

    output = result.stdout
    assert f"{SAMPLE_RECORDS} records from 2 agencies, 200 true pairs" in output
    figures = {name: (float(precision), float(recall), float(f1))
               for name, precision, recall, f1 in ROW.findall(output)}
    assert set(figures) == {"tipsync", "tipsync-pipeline"}, output
    precision, recall, f1 = figures["tipsync-pipeline"]
    assert precision > 0.9 and recall > 0.9 and f1 > 0.9, output
    # the stream app resolved with the EM model fitted on the same records, from a file
    assert "EM-fitted model" in output and "tipsync stream --model" in output
    assert f"{SAMPLE_RECORDS} rows, {SAMPLE_RECORDS} published, 0 rejected by the producers, " \
           f"{SAMPLE_RECORDS} in reconciled.person_source" in output
