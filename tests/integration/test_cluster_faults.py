"""A Kafka node lost in the middle of a backfill (issue 19): ``tipsync bench faults --brokers 3
--node-kills 1`` on a private three-node stack (port base 22600: nodes on 22692, 22792, 22892;
the registry 22681, PostgreSQL 22632), which it starts, wipes and stops.

While the synthetic task force is published and the stream worker and the sink run (each
killed once too), one Kafka node is SIGKILLed, stays down 20 s and is started again: once a
node that is not the active controller, once the active controller (a broker too: the nodes
are combined). The pipeline goes on without a restart made for it; at the end nothing is lost
or duplicated, the people are clustered as an undisturbed run clusters them, every node is
back in sync on every ``tip.*`` replica it holds, and after the controller's loss another node
was elected. Several minutes each: marked ``faults`` (``make faults``).
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

PORTS = {"--kafka-port": "22692", "--registry-port": "22681", "--postgres-port": "22632"}
PEOPLE = 150
KILLS = 2  # the stream worker or the sink, besides the node
SEED = 19


def run_with_a_node_killed(settings: Settings, target: str) -> tuple[dict, str]:
    # Inside the shared state folder: PostgreSQL's unprivileged user can traverse it.
    home = Path(tempfile.mkdtemp(prefix="cluster-faults-test-", dir=settings.home))
    home.chmod(0o755)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "bench", "faults", "--brokers", "3",
             "--node-kills", "1", "--node-kill-target", target, "--people", str(PEOPLE),
             "--kills", str(KILLS), "--restarts", "0", "--seed", str(SEED),
             "--home", str(home), *(item for pair in PORTS.items() for item in pair)],
            capture_output=True, text=True, timeout=1500,
            env={**os.environ, "TIPSYNC_CACHE": str(settings.cache)},
        )
        # Stopped and wiped: no node of the private stack keeps running.
        wiped = not (home / "stack" / "run").exists()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    output = result.stdout
    print(output)  # the figures (pytest -s or -rP shows them)
    assert wiped and output.strip(), output + result.stderr[-3000:]
    return json.loads(output.strip().splitlines()[-1]), output + result.stderr[-3000:]


def assert_nothing_lost_and_the_node_caught_up(figures: dict, output: str) -> dict:
    assert figures["brokers"] == 3, output
    assert figures["kills_total"] == KILLS, output
    assert figures["published"] > PEOPLE, output
    assert figures["lost"] == 0, output
    assert figures["duplicated"] == 0, output
    assert figures["cluster_differences"] == 0, output
    # the pipeline went on: no process exited by itself, no worker stalled
    assert figures["exits_after_restart"] == {"producer": 0}, output
    assert figures["stalled_stream_restarts"] == 0, output
    (kill,) = figures["node_kills"]
    assert kill["down_seconds"] >= 20, output
    # every node registered and in sync on every tip.* replica it holds
    assert figures["out_of_sync_replicas"] == 0, output
    assert figures["isr_restored_seconds"] is not None, output
    assert kill["caught_up_seconds"] is not None, output
    assert figures["passed"], output
    return kill


@pytest.mark.timeout(1600)
def test_a_broker_killed_during_a_backfill_loses_nothing_and_catches_up(
    settings: Settings,
) -> None:
    figures, output = run_with_a_node_killed(settings, "broker")
    kill = assert_nothing_lost_and_the_node_caught_up(figures, output)
    assert kill["target"] == "broker" and kill["node"] != kill["controller_before"], output
    assert kill["new_controller"] == kill["controller_before"], output  # no election needed
    assert kill["election_seconds"] is None, output


@pytest.mark.timeout(1600)
def test_the_active_controller_killed_during_a_backfill_is_replaced_and_nothing_is_lost(
    settings: Settings,
) -> None:
    figures, output = run_with_a_node_killed(settings, "controller")
    kill = assert_nothing_lost_and_the_node_caught_up(figures, output)
    assert kill["target"] == "controller" and kill["node"] == kill["controller_before"], output
    assert kill["new_controller"] not in (None, kill["node"]), output
    assert kill["election_seconds"] is not None and kill["election_seconds"] < 20, output
