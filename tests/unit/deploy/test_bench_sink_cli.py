"""``tipsync bench sink`` without a reachable PostgreSQL: a clear error, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_no_database_is_named_with_what_to_start() -> None:
    # port 9 (discard) on loopback: nothing listens there
    env = {**os.environ, "TIPSYNC_DATABASE_URL": "postgresql://tipsync@127.0.0.1:9/tipsync"}
    done = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "bench", "sink", "--changes", "10", "--keys", "5"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert "cannot reach PostgreSQL" in done.stderr
    assert "tipsync stack up" in done.stderr and "TIPSYNC_DATABASE_URL" in done.stderr
    assert "Traceback" not in done.stderr
