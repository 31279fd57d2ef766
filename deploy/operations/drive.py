"""Driving the pipeline from outside, one ``tipsync`` command at a time, as an operator would.

The steps ``tipsync demo`` and the end-to-end benchmarks share: prepare the contract, topics
and store; publish agency files side by side; wait until ``tipsync lag --wait-zero`` says the
pipeline drained; read which golden person each source record ended in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg

from deploy.demo.generate import ExportFile
from deploy.operations.enrolment import enroll
from deploy.stack.acls import AclError
from deploy.stack.stack import LocalStack
from schemas.agencies import load_agencies
from schemas.config import Settings
from schemas.topics import TOPICS

PRODUCER_CONCURRENCY = 3
DRAIN_TIMEOUT_SECONDS = 600
# The pipeline's consumer groups (the stream app's id and the sink's default group); named
# explicitly so leftovers of other runs on a shared broker never hold the demo up.
PIPELINE_GROUPS = (TOPICS.stream_group, TOPICS.sink_group)


class StepError(Exception):
    """A step failed; the message names the step and what to look at."""


def tipsync(*arguments: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run one ``tipsync`` command as a separate process, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", *arguments],
        capture_output=True, text=True, timeout=timeout, env=dict(os.environ),
    )


def checked(step: str, *arguments: str, timeout: float = 900) -> str:
    result = tipsync(*arguments, timeout=timeout)
    if result.returncode != 0:
        raise StepError(
            f"{step} (`tipsync {' '.join(arguments)}`) failed with exit {result.returncode}:\n"
            f"{(result.stderr or result.stdout).strip()[-3000:]}"
        )
    return result.stdout


def prepare(settings: Settings) -> None:
    report = LocalStack(settings).up()
    say(f"stack up ({report.seconds:.1f}s)")
    checked("registering the schemas", "schemas", "register")
    checked("creating the topics", "topics", "create")
    checked("migrating the reconciled store", "db", "migrate")
    enrolled = enroll_agencies(settings)
    say(f"schemas registered, topics created, store migrated, {enrolled} agencies enrolled")


def enroll_agencies(settings: Settings) -> int:
    """Every agency of the registry enrolled (as ``tipsync agency enroll`` does; a no-op for
    one enrolled before): each ``tipsync produce --agency X`` then publishes as agency X,
    with X's own file and nothing but X's rights."""
    agencies = sorted(load_agencies())
    for agency_id in agencies:
        try:
            enroll(settings, agency_id, TOPICS)
        except AclError as error:
            raise StepError(f"enrolling agency {agency_id} failed: {error}") from None
    return len(agencies)


@dataclass
class ProduceResult:
    file: ExportFile
    summary: dict[str, Any]


def produce(file: ExportFile, full_export: bool) -> ProduceResult:
    arguments = ["produce", "--agency", file.agency, "--entity", file.entity,
                 "--file", str(file.path), "--no-progress"]
    if file.mapping is not None:
        arguments += ["--mapping", str(file.mapping)]
    if full_export:
        arguments.append("--full-export")
    output = checked(f"publishing {file.agency}'s {file.entity} export", *arguments)
    return ProduceResult(file, json.loads(output.strip().splitlines()[-1]))


def produce_all(files: Sequence[ExportFile], full_export: bool) -> list[ProduceResult]:
    # Agencies publish side by side, as they would in the field.
    with ThreadPoolExecutor(PRODUCER_CONCURRENCY) as pool:
        return list(pool.map(lambda file: produce(file, full_export), files))


def wait_for_drain(timeout: float = DRAIN_TIMEOUT_SECONDS) -> float:
    began = time.monotonic()
    groups = [argument for group in PIPELINE_GROUPS for argument in ("--group", group)]
    checked("waiting for the pipeline to drain", "lag", "--wait-zero", "--timeout",
            str(int(timeout)), *groups, timeout=timeout + 60)
    return time.monotonic() - began



def percentile(values: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * percent // 100))
    return ordered[int(rank) - 1]


def read_predicted(connection: psycopg.Connection[Any]) -> dict[tuple[str, str], str]:
    rows = connection.execute(
        "select agency_id, source_record_id, person_id::text "
        "from reconciled.person_source where not deleted"
    ).fetchall()
    return {(agency, record): person for agency, record, person in rows}


def say(line: str) -> None:
    print(line, flush=True)
