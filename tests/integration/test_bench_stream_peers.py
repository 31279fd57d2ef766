"""``tipsync bench stream --peers`` on the real stack with 500 events: the faust worker, the
bare confluent-kafka loop and the quix-streams application each forward every event.

A smoke test of the command, kept small for CI's time: about 30 s once the quix-streams
environment exists (the first run on a machine makes it under the cache with pip first). No
threshold on speed: a benchmark prints figures, the test checks the outputs are complete and
the figures are there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from schemas.config import Settings

EVENTS = 500


@pytest.mark.timeout(900)
def test_three_engines_forward_every_event_and_print_their_figures(stack: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "bench", "stream", "--peers",
         "--events", str(EVENTS), "--partitions", "3"],
        capture_output=True, text=True, timeout=840, env=dict(os.environ),
    )
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["benchmark"] == "stream-peers" and figures["complete"] is True
    assert set(figures["engines"]) == {"faust", "bare", "quix"}
    for engine, numbers in figures["engines"].items():
        assert numbers["complete"] is True, engine
        assert numbers["events"] >= EVENTS and numbers["messages"] >= EVENTS, engine
        # 500 events may all appear between two looks at the output: then nothing was
        # timed and the figures say n/a rather than a rate
        assert 0 <= numbers["timed"] <= numbers["events"], engine
        assert (numbers["events_per_second"] is None) == (numbers["timed"] == 0), engine
        assert numbers["events_per_second"] is None or numbers["events_per_second"] > 0
    bare = figures["engines"]["bare"]
    assert bare["rate_vs_bare"] == (None if bare["timed"] == 0 else 1.0)
    for engine in ("faust", "bare", "quix"):
        assert f"{engine:<6}: " in result.stdout  # a line of figures for each
        assert "complete; load average" in result.stdout
