"""``tipsync stream`` (run the stream workers) and ``tipsync bench stream``.

``tipsync stream`` runs one faust worker in this process; ``--workers N`` starts N worker
processes (worker i gets its own state folder and metrics port + i) and stops them all on
Ctrl-C or SIGTERM. Workers share the partitions of the agency topics; one of them also owns
the single resolve partition. ``--role`` chooses what a worker runs (``streams.options.ROLES``);
``--role split --workers N`` starts worker 0 as the resolve worker and workers 1..N-1 for
ingest, so resolve has a core of its own.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from types import FrameType
from typing import Any

from deploy.cli.options import add_client_config, add_topic_root, use_principal
from deploy.stack.principals import STREAM
from schemas import config
from streams.metrics import DEFAULT_METRICS_PORT
from streams.options import ROLES, SPLIT


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    stream = subparsers.add_parser(
        "stream",
        help="run the stream app (ingest and resolve) with one or more workers",
        description=(
            "Run the faust stream app: ingest (dedupe, versions, dead letters) on every "
            "tip.agency.* topic and resolve (people and links). See docs/STREAMS.md."
        ),
    )
    stream.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    stream.add_argument(
        "--role", choices=(*ROLES, SPLIT), default="all",
        help="what each worker runs: all (ingest and resolve, the default), ingest (agency "
        "topics, stewards' decisions), resolve (the resolve partition only; one worker), or "
        "split (with --workers N >= 2: worker 0 resolves, the others ingest)",
    )
    stream.add_argument(
        "--worker-index", type=int, default=None,
        help="run only worker number I of a group (what --workers starts; default 0)",
    )
    stream.add_argument(
        "--store", choices=("rocksdb", "memory"), default="rocksdb",
        help="table store; both keep a changelog topic (default rocksdb)",
    )
    stream.add_argument(
        "--web-port", type=int, default=None,
        help="port of faust's web server (default: off); worker i uses port + i",
    )
    stream.add_argument(
        "--metrics-port", type=int, default=None,
        help=f"Prometheus port (default {config.STREAM_METRICS_PORT} or {DEFAULT_METRICS_PORT}; "
        "0 turns it off); worker i uses port + i",
    )
    add_topic_root(stream)
    add_client_config(stream)
    stream.add_argument(
        "--discovery-interval", type=float, default=30.0,
        help="seconds between looks for new agency topics (default 30)",
    )
    stream.add_argument("--loglevel", default="warning", help="faust log level (default warning)")
    stream.add_argument(
        "--model", default=None, metavar="PATH",
        help="resolve with this scoring model file (tipsync model fit; default "
        f"{config.RESOLVE_MODEL}, else the reasoned default weights); a model other than the "
        "one the published view was made with re-resolves every person record once",
    )
    use_principal(stream, STREAM)
    stream.set_defaults(func=run_stream)


def _worker_role(args: argparse.Namespace, index: int) -> str:
    if args.role == SPLIT:
        return "resolve" if index == 0 else "ingest"
    return str(args.role)


def _worker_arguments(args: argparse.Namespace, index: int) -> list[str]:
    arguments = [
        "stream", "--worker-index", str(index), "--role", _worker_role(args, index),
        "--store", args.store,
        "--topic-root", args.topic_root, "--loglevel", args.loglevel,
        "--discovery-interval", str(args.discovery_interval),
    ]
    if args.web_port is not None:
        arguments += ["--web-port", str(args.web_port)]
    if args.metrics_port is not None:
        arguments += ["--metrics-port", str(args.metrics_port)]
    if args.model is not None:
        arguments += ["--model", str(args.model)]
    return arguments


def run_stream(args: argparse.Namespace) -> int:
    if args.workers < 1:
        print(f"tipsync stream: --workers {args.workers} must be 1 or more", file=sys.stderr)
        return 2
    if args.role == SPLIT and (args.workers < 2 or args.worker_index is not None):
        print("tipsync stream: --role split needs --workers 2 or more (worker 0 resolves, the "
              "others ingest); to start one worker of a split group give its own role, e.g. "
              "--role ingest --worker-index 1", file=sys.stderr)
        return 2
    if args.role == "resolve" and args.workers > 1:
        print("tipsync stream: --role resolve runs one worker (the resolve topic has one "
              "partition); start more with --role ingest", file=sys.stderr)
        return 2
    if args.workers > 1 and args.worker_index is None:
        return _run_group(args)
    return _run_one(args, args.worker_index or 0)


def _run_one(args: argparse.Namespace, index: int) -> int:
    from streams.app import StreamOptions, create_app, run_worker

    overrides: dict[str, Any] = {
        "topic_root": args.topic_root,
        "store": args.store,
        "worker_index": index,
        "web_port": None if args.web_port is None else args.web_port + index,
        "discovery_interval_seconds": args.discovery_interval,
        "loglevel": args.loglevel,
        "role": _worker_role(args, index),
    }
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port or None
    if args.model is not None:
        overrides["model_path"] = args.model
    try:
        options = StreamOptions.from_environment(None, **overrides)
        stream_app = create_app(options)
    except Exception as error:  # noqa: BLE001 - startup problems are the user's to fix
        print(f"tipsync stream: cannot start worker {index}: {error}", file=sys.stderr)
        return 1
    run_worker(stream_app)
    return 0


def _run_group(args: argparse.Namespace) -> int:
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", *_worker_arguments(args, index)],
            env=os.environ.copy(),
        )
        for index in range(args.workers)
    ]

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    codes = [child.wait() for child in children]
    failed = [index for index, code in enumerate(codes) if code not in (0, -signal.SIGTERM)]
    if failed:
        print(f"tipsync stream: worker(s) {failed} exited with {codes}", file=sys.stderr)
        return 1
    return 0
