"""``tipsync bench er``: resolution quality on FEBRL, in-process and through the pipeline.

The in-process harness (``deploy/bench/er.py``) feeds the ``Resolver`` directly and puts
Splink 5 beside it. ``--through-pipeline`` adds a row for the same records sent the way an
agency's data travels: one canonical person CSV per agency, published with ``tipsync
produce``, read by ``tipsync stream`` (ingest, resolve) and written by ``tipsync sink`` to
``reconciled.person_source``, whose source -> golden person mapping is then scored with the
harness's own functions.

This module registers the command because the pipeline path needs the stack, and ``streams``
never imports ``deploy``: ``bench_er.run`` receives the pipeline driver as a function.

The pipeline runs on a private stack of its own (own state folder and ports, the shared
download cache), so it never disturbs the shared stack or another engineer's run. Its state is
wiped before each run (the producers' checkpoints would otherwise publish nothing) and the
stack is stopped and wiped after a successful run unless ``--keep-stack``; after a failed run
it is stopped and its logs stay in its state folder.

The stream app resolves with weights fitted by EM on the same records (``--pipeline-weights
em``, the default): like Splink, which sees the whole batch before it predicts, the model is
fitted once on every record (``bench_er.fit_model``, the fit of the in-process ``tipsync-em``
row), written as a model file and handed to ``tipsync stream --model``. ``--pipeline-weights
default`` runs the pipeline with the reasoned default weights instead (the ``tipsync`` row).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from deploy.bench.er import Quality, pairs_within
from deploy.demo.generate import ExportFile
from schemas import config

# Port base 32000, below Linux's ephemeral range (32768-60999): a port in that range can be
# taken at any moment as an outgoing connection's source port (33082 and 33092 were, by
# clients of another stack, during the first runs), and the stack then refuses to start.
PRIVATE_PORTS = {"kafka": 32092, "registry": 32081, "postgres": 32032}
STACK_FOLDER = "stack"  # the private stack's state folder, inside the benchmark's folder
EXPORTS_FOLDER = "exports"
MODEL_FILE = "person-model.json"  # in the benchmark's folder, beside the agency files
DRAIN_TIMEOUT_SECONDS = 900.0
# No Prometheus endpoints: the shared stack's stream app and sink hold the default ports.
NO_METRICS = {config.STREAM_METRICS_PORT: "0", config.SINK_METRICS_PORT: "0"}
STREAM_ARGUMENTS = ("--metrics-port", "0")
SINK_ARGUMENTS = ("--metrics-port", "0")
PERSON_COLUMNS = (
    "source_record_id", "given_name", "family_name", "date_of_birth", "nin", "address",
    "updated_at", "source_version",
)
# The contract's date of birth at its precision, as the producer reads it back.
DATE_TEXT_LENGTH = {"DAY": 10, "MONTH": 7, "YEAR": 4}


# --------------------------------------------------------------------------- command


def register_arguments(parser: argparse.ArgumentParser) -> None:
    from deploy.bench import er as bench_er

    bench_er.register_arguments(parser)
    parser.add_argument(
        "--through-pipeline", action="store_true",
        help="also publish the records with tipsync produce (one agency file each) and score "
             "what tipsync stream and tipsync sink make of them, on a private stack",
    )
    parser.add_argument(
        "--pipeline-weights", choices=("em", "default"), default="em",
        help="the stream app resolves with a model fitted by EM on the same records (em, "
             "default: as Splink fits on the batch) or with the reasoned default weights",
    )
    parser.add_argument("--keep-stack", action="store_true",
                        help="leave the private stack running, with its data, at the end")
    parser.add_argument("--home", type=Path, default=None,
                        help=f"the benchmark's folder (default <{config.HOME}>/"
                             "bench-er-pipeline): agency files, and the private stack under"
                             " stack/")
    parser.add_argument("--kafka-port", type=int, default=PRIVATE_PORTS["kafka"])
    parser.add_argument("--registry-port", type=int, default=PRIVATE_PORTS["registry"])
    parser.add_argument("--postgres-port", type=int, default=PRIVATE_PORTS["postgres"])
    parser.add_argument("--drain-timeout", type=float, default=DRAIN_TIMEOUT_SECONDS,
                        help=f"give up waiting for the pipeline after this many seconds "
                             f"(default {DRAIN_TIMEOUT_SECONDS:.0f})")


def run_bench_er(args: argparse.Namespace) -> int:
    from deploy.bench import er as bench_er
    from deploy.bench.e2e import BenchError
    from deploy.operations.drive import StepError
    from deploy.operations.offsets import OperationsError
    from deploy.operations.supervisor import PipelineError
    from deploy.stack.layout import StackError

    if args.sample is not None and args.sample < 2:
        print(f"tipsync bench er: --sample {args.sample} leaves no pair to find; give 2 or "
              "more records", file=sys.stderr)
        return 2
    if not args.through_pipeline:
        return bench_er.run(args)

    def through_pipeline(
        events: Sequence[Mapping[str, Any]], truth: set[tuple[str, str]]
    ) -> tuple[Quality, list[str]]:
        return resolve_through_pipeline(events, truth, args)

    try:
        return bench_er.run(args, through_pipeline)
    except (BenchError, StepError, PipelineError, StackError, OperationsError) as error:
        print(f"tipsync bench er: {error}", file=sys.stderr)
        return 1


# --------------------------------------------------------------------------- agency files


def date_text(iso: str | None, precision: str | None) -> str:
    """The date of birth as an agency writes it: ``YYYY-MM-DD``, ``YYYY-MM`` or ``YYYY``."""
    if not iso or not precision:
        return ""
    return iso[:DATE_TEXT_LENGTH[precision]]


def canonical_row(event: Mapping[str, Any]) -> dict[str, str]:
    """One person event of the harness as a row of the canonical person columns.

    FEBRL's addresses are Australian, so the whole line goes to ``address`` and ``parish``
    stays empty; its soc_sec_id goes to ``nin``, a strong identifier like the harness's.
    The harness's version and event time are kept, so both paths resolve the same records.
    """
    identifiers = event["identifiers"]
    addresses = event["addresses"]
    return {
        "source_record_id": event["source_record_id"],
        "given_name": event["given_name"] or "",
        "family_name": event["family_name"] or "",
        "date_of_birth": date_text(event["date_of_birth"], event["dob_precision"]),
        "nin": identifiers[0]["value"] if identifiers else "",
        "address": addresses[0]["line"] if addresses else "",
        "updated_at": event["event_time"].isoformat().replace("+00:00", "Z"),
        "source_version": str(event["source_version"]),
    }


def rows_by_agency(events: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """Each agency's rows, in the harness's arrival order."""
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for event in events:
        rows[event["agency_id"]].append(canonical_row(event))
    return dict(rows)


def write_agency_files(folder: Path, events: Sequence[Mapping[str, Any]]) -> list[ExportFile]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for agency, rows in sorted(rows_by_agency(events).items()):
        path = folder / f"{agency}-person.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=PERSON_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        files.append(ExportFile(agency=agency, entity="person", path=path, format="csv",
                                mapping=None, rows=len(rows), bad_rows=0, step=0))
    return files


# --------------------------------------------------------------------------- scoring


def pipeline_quality(
    golden_of: Mapping[tuple[str, str], str], truth: set[tuple[str, str]], seconds: float
) -> Quality:
    """Pairwise quality of the store's clusters (source record -> golden person id).

    Blocking happens inside the stream app, out of sight, so its recall is not known here
    (it is the in-process figure: the same code on the same records).
    """
    members: dict[str, list[str]] = defaultdict(list)
    for (_agency, record_id), person_id in golden_of.items():
        members[person_id].append(record_id)
    predicted = pairs_within(members.values())
    return Quality(len(predicted), len(truth), len(predicted & truth), None, seconds)


# --------------------------------------------------------------------------- private stack


@contextlib.contextmanager
def private_stack_environment(args: argparse.Namespace) -> Iterator[dict[str, str]]:
    """The connection variables of the private stack, for this process and every
    ``tipsync`` process it starts; the caller's environment comes back afterwards."""
    from deploy.bench.e2e import BenchError, private_environment
    from schemas.config import load_settings

    shared = load_settings()
    bench_home = (args.home or shared.home / "bench-er-pipeline").resolve()
    environment = {**private_environment(shared, bench_home / STACK_FOLDER, args), **NO_METRICS}
    if Path(environment[config.HOME]) == shared.home:
        raise BenchError(
            f"--home {bench_home} would put the private stack in the shared state folder "
            f"{shared.home}; give a folder of its own"
        )
    saved = dict(os.environ)
    os.environ.update(environment)
    try:
        yield environment
    finally:
        os.environ.clear()
        os.environ.update(saved)


def resolve_through_pipeline(
    events: Sequence[Mapping[str, Any]], truth: set[tuple[str, str]], args: argparse.Namespace
) -> tuple[Quality, list[str]]:
    """Publish ``events`` as agency files on a private stack, let the stream app and the sink
    drain, and score the store's source -> golden mapping."""
    import psycopg

    from deploy.bench.e2e import BenchError, wait_until_consuming, warm_up
    from deploy.bench.er import fit_model
    from deploy.operations.drive import prepare, produce_all, read_predicted, wait_for_drain
    from deploy.operations.supervisor import Pipeline
    from deploy.stack.stack import LocalStack
    from schemas.config import load_settings
    from streams.resolve.model_file import Fitted, ModelFile, write_model_file

    # Progress goes to stderr: stdout keeps the table of figures in one piece.
    with private_stack_environment(args) as environment, \
            contextlib.redirect_stdout(sys.stderr):
        settings = load_settings()
        stack = LocalStack(settings)
        succeeded = False
        try:
            stack.reset()  # the private stack only: producers' checkpoints start empty
            prepare(settings)
            files = write_agency_files(settings.home.parent / EXPORTS_FOLDER, events)
            stream_arguments: tuple[str, ...] = STREAM_ARGUMENTS
            model_file: ModelFile | None = None
            fitting = 0.0
            if args.pipeline_weights == "em":
                fit_began = time.monotonic()
                model, report = fit_model(events)
                model_file = ModelFile(model, Fitted(
                    records=report.records, candidate_pairs=report.candidate_pairs,
                    random_pairs=report.random_pairs,
                    expected_matches=round(report.expected_matches, 3),
                    iterations=report.iterations, fitted_at=time.strftime("%Y-%m-%d"),
                ))
                fitting = time.monotonic() - fit_began
                model_path = settings.home.parent / MODEL_FILE
                write_model_file(model_path, model_file)
                stream_arguments = (*STREAM_ARGUMENTS, "--model", str(model_path))
            warm_up(settings, stream_arguments)
            with Pipeline(settings, stream_arguments, SINK_ARGUMENTS) as pipeline:
                wait_until_consuming(settings, pipeline)
                began = time.monotonic()
                results = produce_all(files, full_export=False)
                producing = time.monotonic() - began
                pipeline.check()
                wait_for_drain(args.drain_timeout)
                pipeline.check()
                seconds = time.monotonic() - began
            with psycopg.connect(settings.database_url) as connection:
                golden_of = read_predicted(connection)
            succeeded = True
        finally:
            if args.keep_stack:
                exports = " ".join(f"{key}='{value}'" for key, value in environment.items())
                print(f"private stack kept running; to reach it: export {exports}")
            elif succeeded:
                stack.reset()  # stops it and frees the disk; the agency files stay
            else:
                stack.down()
                print(f"private stack stopped; its logs are in {settings.home / 'logs'}")

    published = sum(int(result.summary.get("published", 0)) for result in results)
    rejected = sum(int(result.summary.get("rejected", 0)) for result in results)
    expected = {(event["agency_id"], event["source_record_id"]) for event in events}
    stored = expected & golden_of.keys()
    if not stored:
        raise BenchError(
            f"none of the {len(expected)} published records reached reconciled.person_source; "
            f"see the logs in {settings.home / 'logs'} (rerun with --keep-stack to look at the "
            "dead-letter topics tip.dlq.*)"
        )
    quality = pipeline_quality({key: golden_of[key] for key in stored}, truth, seconds)
    weights = (
        "reasoned default weights" if model_file is None else
        f"EM-fitted model {model_file.fingerprint} (fitted on the same {len(events)} records "
        f"in {fitting:.1f}s before publishing, match threshold "
        f"{model_file.model.match_threshold:.1f}; tipsync stream --model)"
    )
    notes = [
        "tipsync-pipeline: tipsync (pipeline: producer → Kafka → stream app → sink → "
        f"PostgreSQL) on a private stack, {weights}; seconds = first publish to drained",
        f"tipsync-pipeline: {len(files)} agency files, {len(events)} rows, {published} "
        f"published, {rejected} rejected by the producers, {len(stored)} in "
        f"reconciled.person_source; producers {producing:.1f}s; load average "
        f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}",
    ]
    if rejected or len(stored) < len(expected):
        notes.append(
            f"tipsync-pipeline: {len(expected) - len(stored)} records missing from the store "
            "count as unmatched (lower recall); see the rejects files and tip.dlq.*"
        )
    return quality, notes
