"""Issue 15, retention, on the real stack: a record past its retention date
(``retention_until`` before today, carried from the event into the store) disappears when
``tipsync retention enforce`` runs (as its scheduled form runs it, ``--every``), through the
pipeline like an erasure; a record within its retention stays; ``--dry-run`` only counts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.config import Settings
from tests.integration.erasure_pipeline import erasure_pipeline, person_event


@pytest.fixture(scope="module")
def enforced(stack: Settings) -> Iterator[dict[str, Any]]:
    today = datetime.now(UTC).date()
    with erasure_pipeline(stack, "test_retention") as pipeline:
        pipeline.publish(
            "person",
            person_event("police-ctu", "P-RET-5", "Orla", "Expiry", "900100205",
                         retention_until=today - timedelta(days=1)),
            person_event("immigration", "I-RET-6", "Piers", "Keepwell", "900100206",
                         retention_until=today + timedelta(days=365)),
            person_event("immigration", "I-RET-7", "Uma", "Nodate", "900100207",
                         retention_until=None),
        )
        keys = [("police-ctu", "P-RET-5"), ("immigration", "I-RET-6"),
                ("immigration", "I-RET-7")]
        pipeline.wait_for(lambda: all(pipeline.stored(*key) for key in keys),
                          "the three people in the store")
        stored = dict(pipeline.rows(
            "SELECT source_record_id, retention_until FROM reconciled.person_source"))
        dry_run = pipeline.tipsync("retention", "enforce", "--dry-run")
        still_there = pipeline.stored("police-ctu", "P-RET-5")
        # the scheduled form, as an operator runs it (here every 2 s), stopped once it has
        # erased the record
        scheduled = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "retention", "enforce", "--every", "2",
             "--topic-root", pipeline.harness.prefix, "--database-url",
             pipeline.database_url, "--wait", "120"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # Ctrl-C as an operator's terminal gives it, even when the tests run in a
            # background job, whose shell has them ignore SIGINT (inherited, and Python then
            # installs no KeyboardInterrupt handler: the command ran on for ever)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        lines: list[str] = []
        reader = threading.Thread(
            target=lambda: lines.extend(iter(scheduled.stdout.readline, "")),  # type: ignore[union-attr]
            daemon=True)
        reader.start()
        try:  # until its report's last line
            pipeline.wait_for(lambda: any(line.startswith("  outside tipsync:")
                                          for line in list(lines)),
                              "the scheduled retention enforce erasing P-RET-5")
        finally:
            scheduled.send_signal(signal.SIGINT)
            _, err = scheduled.communicate(timeout=60)
            reader.join(10)
        out = "".join(lines)
        yield {"pipeline": pipeline, "stored": stored, "dry_run": dry_run,
               "still_there": still_there, "out": out, "err": err, "today": today}


def test_the_retention_date_travels_into_the_store(enforced: dict[str, Any]) -> None:
    today = enforced["today"]
    assert enforced["stored"] == {"P-RET-5": today - timedelta(days=1),
                                  "I-RET-6": today + timedelta(days=365), "I-RET-7": None}


def test_a_dry_run_counts_per_agency_and_erases_nothing(enforced: dict[str, Any]) -> None:
    result = enforced["dry_run"]
    assert result.returncode == 0, result.stderr
    assert "1 source record(s) past retention (dry run, nothing erased)" in result.stdout
    assert "  police-ctu: 1" in result.stdout and "immigration" not in result.stdout
    assert enforced["still_there"]


def test_a_record_past_retention_disappears_without_anyone_asking(
    enforced: dict[str, Any],
) -> None:
    pipeline = enforced["pipeline"]
    assert "1 source record(s) erased" in enforced["out"], enforced["err"]
    assert "copies that may remain, until:" in enforced["out"]
    assert not pipeline.stored("police-ctu", "P-RET-5")
    assert pipeline.rows("SELECT 1 FROM reconciled.person WHERE family_name = 'Expiry'") == []
    assert pipeline.stored("immigration", "I-RET-6") and pipeline.stored("immigration", "I-RET-7")
    assert pipeline.rows(
        "SELECT reason, agency_id, source_record_id, completed_at IS NOT NULL"
        " FROM reconciled.erasure_log") == [("retention", "police-ctu", "P-RET-5", True)]
