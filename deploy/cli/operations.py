"""``tipsync lag | freshness | monitor``: the on-call operator's view of the pipeline.

    tipsync lag [--json] [--group G ...] [--group-prefix P] [--samples N --interval S]
                [--fail-on STALL|STOP]
    tipsync lag --wait-zero --timeout SECONDS [--group G ...]

Exit codes: 0 answered (with --fail-on: no group that bad; with --wait-zero: everything
caught up); 1 a group is at --fail-on's status or worse, or --wait-zero timed out; 2 the tool
could not ask (Kafka unreachable, bad arguments). A cron job or a CI step can so run
``tipsync lag --fail-on STALL`` as a check.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from deploy.cli.options import add_client_config, add_topic_root, use_principal
from deploy.operations.exporter import Monitor
from deploy.operations.freshness import render_histogram, watch_freshness
from deploy.operations.lag import GroupLag, Status, Thresholds, failing, still_behind
from deploy.operations.offsets import OperationsError
from deploy.operations.survey import survey_lag
from deploy.stack.principals import MONITOR
from schemas import config
from schemas.config import Settings, load_settings
from schemas.topics import TopicNames


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    lag = subparsers.add_parser(
        "lag",
        help="consumer lag of the pipeline's groups, in messages and seconds, with a status",
        description=(
            "For every consumer group of the pipeline (stream stages, sink) and every partition:"
            " end offset, committed offset, lag in messages and seconds, and a Burrow-style"
            " status (OK, WARN, STALL, STOP, REWIND, NO_COMMIT; see docs/OPERATIONS.md)."
        ),
    )
    lag.add_argument("--json", action="store_true", help="print JSON for machines")
    lag.add_argument(
        "--group", action="append", default=[], metavar="GROUP",
        help="only this group (repeatable); default: every group of the pipeline",
    )
    lag.add_argument(
        "--group-prefix", default="", metavar="PREFIX",
        help="without --group: only pipeline groups whose name starts with PREFIX",
    )
    lag.add_argument(
        "--samples", type=int, default=2,
        help="samples to take in this run, --interval apart (default 2)",
    )
    lag.add_argument(
        "--interval", type=float, default=1.0, help="seconds between samples (default 1)"
    )
    lag.add_argument(
        "--window", type=float, default=None, metavar="SECONDS",
        help="sample for SECONDS (every --interval) instead of --samples times",
    )
    lag.add_argument(
        "--stall-after", type=float, default=Thresholds.stall_after_seconds, metavar="SECONDS",
        help="a connected group whose offset has not moved this long while behind is STALL"
        f" (default {Thresholds.stall_after_seconds:.0f})",
    )
    lag.add_argument(
        "--stop-after", type=float, default=Thresholds.stop_after_seconds, metavar="SECONDS",
        help="an offset that has not moved this long while behind is STOP"
        f" (default {Thresholds.stop_after_seconds:.0f})",
    )
    lag.add_argument(
        "--history", type=Path, default=None, metavar="FILE",
        help=f"where the window of samples is kept (default <{config.HOME}>/operations/"
        "lag-history.json)",
    )
    lag.add_argument(
        "--fail-on", choices=[status.value for status in Status if status is not Status.OK],
        default=None, metavar="STATUS",
        help="exit 1 when a group's status is STATUS or worse (order: NO_COMMIT, WARN,"
        " REWIND, STALL, STOP; e.g. STALL catches STALL and STOP); the report is printed"
        " as usual",
    )
    lag.add_argument(
        "--wait-zero", action="store_true",
        help="wait until every group has caught up (exit 0) or --timeout passes (exit 1)",
    )
    lag.add_argument(
        "--timeout", type=float, default=300.0, metavar="SECONDS",
        help="with --wait-zero: give up after SECONDS (default 300)",
    )
    add_client_config(lag)
    use_principal(lag, MONITOR)
    lag.set_defaults(func=lag_command)

    freshness = subparsers.add_parser(
        "freshness",
        help="how old changes are when they become visible in PostgreSQL (a histogram)",
        description=(
            "Watch the reconciled store for SECONDS and print the histogram of (visible in"
            " PostgreSQL - event_time at the agency) of every source record change seen."
        ),
    )
    freshness.add_argument("--watch", type=float, default=30.0, metavar="SECONDS",
                           help="how long to watch (default 30)")
    freshness.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                           help="poll interval; without commit timestamps the figures are too"
                           " high by at most this much (default 1)")
    freshness.add_argument("--json", action="store_true", help="print JSON for machines")
    use_principal(freshness, MONITOR)
    freshness.set_defaults(func=freshness_command)

    monitor = subparsers.add_parser(
        "monitor",
        help="serve lag and freshness as Prometheus metrics (for dashboards and alerts)",
    )
    monitor.add_argument(
        "--port", type=int, default=None,
        help=f"metrics port (default {config.OPERATIONS_METRICS_PORT} or"
        f" {config.DEFAULT_OPERATIONS_METRICS_PORT})",
    )
    monitor.add_argument("--every", type=float, default=15.0, metavar="SECONDS",
                         help="seconds between polls (default 15)")
    monitor.add_argument("--group", action="append", default=[], metavar="GROUP",
                         help="only this group (repeatable); default: the pipeline's groups")
    monitor.add_argument("--group-prefix", default="", metavar="PREFIX",
                         help="without --group: only groups whose name starts with PREFIX")
    add_topic_root(monitor)
    add_client_config(monitor)
    use_principal(monitor, MONITOR)
    monitor.set_defaults(func=monitor_command)


def _check_arguments(args: argparse.Namespace) -> str | None:
    if args.samples < 1:
        return f"--samples {args.samples}: take at least 1 sample"
    if args.interval < 0 or (args.window is not None and args.window < 0):
        return "--interval and --window are durations in seconds and cannot be negative"
    if args.timeout <= 0:
        return f"--timeout {args.timeout}: give --wait-zero a positive number of seconds"
    if args.stall_after > args.stop_after:
        return (
            f"--stall-after {args.stall_after} is longer than --stop-after {args.stop_after};"
            " STALL must come before STOP, so make --stall-after the shorter one"
        )
    return None


def lag_command(args: argparse.Namespace) -> int:
    problem = _check_arguments(args)
    if problem:
        print(f"tipsync lag: {problem}", file=sys.stderr)
        return 2
    settings = load_settings()
    thresholds = Thresholds(
        stall_after_seconds=args.stall_after, stop_after_seconds=args.stop_after
    )
    try:
        if args.wait_zero:
            return _wait_zero(args, settings, thresholds)
        groups, warnings = survey_lag(
            settings,
            groups=args.group,
            prefix=args.group_prefix,
            samples=_sample_count(args),
            interval=args.interval,
            thresholds=thresholds,
            history_file=args.history,
        )
    except OperationsError as error:
        print(f"tipsync lag: {error}", file=sys.stderr)
        return 2
    _print(groups, warnings, as_json=args.json)
    if args.fail_on:
        bad = failing(groups, Status(args.fail_on))
        if bad:
            print(f"tipsync lag: {len(bad)} group(s) at {args.fail_on} or worse: "
                  + ", ".join(f"{group.group} ({group.status.value})" for group in bad),
                  file=sys.stderr)
            return 1
    return 0


def _sample_count(args: argparse.Namespace) -> int:
    if args.window is None:
        return int(args.samples)
    return max(int(args.window / args.interval) + 1 if args.interval else 1, 2)


def _wait_zero(args: argparse.Namespace, settings: Settings, thresholds: Thresholds) -> int:
    """Poll until every group is caught up on two samples in a row: one all-zero sample can
    fall between a stream stage committing its input and its output reaching the next topic."""
    deadline = time.monotonic() + args.timeout
    settled = 0
    groups: list[GroupLag] = []
    warnings: list[str] = []
    while True:
        groups, warnings = survey_lag(
            settings, groups=args.group, prefix=args.group_prefix, samples=1,
            thresholds=thresholds, history_file=args.history,
        )
        caught_up = bool(groups) and all(group.caught_up for group in groups)
        settled = settled + 1 if caught_up else 0
        if settled >= 2:
            if not args.json:
                print(f"caught up: {', '.join(group.group for group in groups)}")
            else:
                _print(groups, warnings, as_json=True)
            return 0
        if time.monotonic() + args.interval > deadline:
            break
        time.sleep(args.interval)
    lines = still_behind(groups) if groups else [
        "no consumer group of the pipeline was found"
        + (f" (looked for {', '.join(args.group)})" if args.group else "")
        + "; start the stream and sink processes, or name the groups with --group"
    ]
    if args.json:
        _print(groups, warnings, as_json=True)
    print(
        f"tipsync lag: still behind after {args.timeout:.0f} s:\n  " + "\n  ".join(lines),
        file=sys.stderr,
    )
    return 1


def freshness_command(args: argparse.Namespace) -> int:
    if args.watch <= 0 or args.interval <= 0:
        print("tipsync freshness: --watch and --interval must be positive numbers of seconds",
              file=sys.stderr)
        return 2
    settings = load_settings()
    try:
        histogram, exact = watch_freshness(settings.database_url, args.watch, args.interval)
    except OperationsError as error:
        print(f"tipsync freshness: {error}", file=sys.stderr)
        return 2
    except psycopg.Error as error:
        print(
            f"tipsync freshness: the reconciled store ({settings.database_url.split('?')[0]})"
            f" could not be read ({str(error).strip()}); start the stack (`tipsync stack up`)"
            f" or check {config.DATABASE_URL}",
            file=sys.stderr,
        )
        return 2
    how = "commit timestamps" if exact else f"polling every {args.interval:g} s (upper bound)"
    if args.json:
        print(json.dumps({"watched_seconds": args.watch, "exact": exact,
                          **histogram.as_json()}, indent=2))
    else:
        print(render_histogram(histogram, f"freshness over {args.watch:g} s, by {how}"))
    return 0


def monitor_command(args: argparse.Namespace) -> int:
    try:
        port = config.operations_metrics_port(args.port)
    except ValueError as error:
        print(f"tipsync monitor: {error}", file=sys.stderr)
        return 2
    if port is None:
        print("tipsync monitor: port 0 turns the metrics endpoint off, and serving it is all"
              " the monitor does; give a free port such as"
              f" {config.DEFAULT_OPERATIONS_METRICS_PORT}",
              file=sys.stderr)
        return 2
    monitor = Monitor(load_settings(), groups=args.group, prefix=args.group_prefix,
                      names=TopicNames(args.topic_root))
    try:
        address = monitor.serve(port)
    except ValueError as error:
        print(f"tipsync monitor: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"tipsync monitor: port {port} cannot be used ({error}); pick another with"
              f" --port, or another address with {config.METRICS_ADDRESS}", file=sys.stderr)
        return 2
    print(f"serving lag and freshness on http://{address}:{port}/metrics every"
          f" {args.every:g} s; Ctrl-C stops", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        monitor.run(args.every, stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


def _print(groups: Sequence[GroupLag], warnings: Sequence[str], *, as_json: bool) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if as_json:
        print(json.dumps({
            "observed_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "groups": [group.as_json() for group in groups],
        }, indent=2))
        return
    print(render_table(groups))


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_table(groups: Sequence[GroupLag]) -> str:
    """The report for people: a line per group, then its partitions."""
    if not groups:
        return (
            "no consumer group of the pipeline was found (none commits on a tip.* topic and"
            " the sink has stored no offsets); name one with --group"
        )
    lines: list[str] = []
    header = (
        f"    {'TOPIC':<40} {'PART':>4} {'END':>10} {'COMMITTED':>10} {'LAG':>8}"
        f" {'LAG_S':>8}  {'STATUS':<9} REASON"
    )
    for group in groups:
        lines.append(
            f"{group.group}  [{group.status.value}]  lag {group.total_lag} messages,"
            f" {group.max_lag_seconds:.1f} s;  offsets in {group.offsets_from};"
            f"  state {group.state}, {group.members} member(s)"
        )
        if not group.partitions:
            lines.append("    (no committed or assigned partitions known)")
            continue
        lines.append(header)
        for partition in group.partitions:
            committed = "-" if partition.committed_offset is None else partition.committed_offset
            lag = (
                partition.lag if partition.lag is not None
                else f"({partition.pending} pending)"
            )
            lines.append(
                f"    {partition.topic:<40} {partition.partition:>4} {partition.end_offset:>10}"
                f" {committed!s:>10} {lag!s:>8} {_seconds(partition.lag_seconds):>8}"
                f"  {partition.status.value:<9} {partition.reason}"
            )
    return "\n".join(lines)
