"""``tipsync bench``: every benchmark, each a command that prints its figures.

The benchmarks themselves live in ``deploy/bench/``; this module only lists them.
"""

from __future__ import annotations

import argparse
import sys

from deploy.cli.options import add_client_config
from schemas.config import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bench = subparsers.add_parser("bench", help="benchmarks that print figures")
    benchmarks = bench.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    bench.set_defaults(func=lambda _args: bench.print_help() or 2)

    serde = benchmarks.add_parser(
        "serde", help="Avro encode/decode records/s: fastavro vs confluent-kafka, one core"
    )
    serde.add_argument("--records", type=int, default=50_000, help="records per measure")
    add_client_config(serde)
    serde.set_defaults(func=_bench_serde)

    from deploy.bench import produce

    parser = benchmarks.add_parser(
        "produce",
        help="events/s of tipsync produce vs Kafka's Java ProducerPerformance, one core",
    )
    produce.register_arguments(parser)
    add_client_config(parser)
    parser.set_defaults(func=produce.run_bench)

    from deploy.bench import er_pipeline

    parser = benchmarks.add_parser(
        "er",
        help="entity resolution quality (precision, recall, F1, blocking recall) on the "
        "FEBRL sets, against Splink; --through-pipeline also through producer, Kafka, "
        "stream app and sink on a private stack",
    )
    er_pipeline.register_arguments(parser)
    parser.set_defaults(func=er_pipeline.run_bench_er)

    from deploy.bench import stream

    parser = benchmarks.add_parser(
        "stream",
        help="ingest events/s per worker through Kafka, and resolve records/s with people "
        "already resolved",
    )
    stream.register_arguments(parser)
    add_client_config(parser)
    parser.add_argument("--peers", action="store_true",
                        help="instead: ingest's decode-check-forward of --events person events "
                             "by the faust worker, a bare confluent-kafka loop and a "
                             "quix-streams app (own venv in the cache), same topic, one run")
    parser.set_defaults(func=_bench_stream)

    from deploy.bench import feeds

    parser = benchmarks.add_parser(
        "feeds",
        help="alert latency (an agency's publish to another agency's row, through the stream "
        "app and tipsync subscribe) and steward decision to the agency's row",
    )
    feeds.register_arguments(parser)
    add_client_config(parser)
    parser.set_defaults(func=feeds.run)

    from deploy.bench import security

    parser = benchmarks.add_parser(
        "security",
        help="what TLS and SASL cost: bench produce and bench stream, SASL_SSL against a"
        " PLAINTEXT listener opened on a private stack for the measurement only",
    )
    security.register_arguments(parser)
    parser.set_defaults(func=security.run_bench)

    from deploy.bench import resolve

    parser = benchmarks.add_parser(
        "resolve",
        help="resolve records/s in-process (no Kafka) with people already resolved",
    )
    resolve.register_arguments(parser)
    parser.set_defaults(func=resolve.run)

    sink = benchmarks.add_parser(
        "sink", help="sink write path rows/s against a plain COPY ceiling (1M changes)"
    )
    sink.add_argument("--changes", type=int, default=1_000_000)
    sink.add_argument("--keys", type=int, default=100_000)
    sink.add_argument("--batch-size", type=int, default=None,
                      help="changes per transaction (default: the sink's)")
    sink.add_argument("--seed", type=int, default=7)
    sink.add_argument("--peers", action="store_true",
                      help="instead: tipsync sink and the Debezium JDBC sink connector (Kafka "
                           "Connect standalone, fetched from Maven Central on first use) on "
                           "the same changes through Kafka, end states compared row by row")
    sink.add_argument("--partitions", type=int, default=3,
                      help="with --peers: partitions of the run's topics (default 3)")
    sink.add_argument("--trickle", action="store_true",
                      help="instead: the sink's latency at a trickle (commit time minus "
                           "publish time), batches closed when caught up against the fixed "
                           "1 s window, same run")
    sink.add_argument("--rate", type=float, default=20.0,
                      help="with --trickle: changes per second (default 20)")
    sink.add_argument("--seconds", type=float, default=30.0,
                      help="with --trickle: seconds per mode (default 30)")
    sink.set_defaults(func=_bench_sink)

    from deploy.bench import e2e

    parser = benchmarks.add_parser(
        "e2e",
        help="end to end on a private stack: backfill of agency files into PostgreSQL "
             "(events/s, total time) and freshness at a steady rate (p50/p99)",
    )
    e2e.register_arguments(parser)
    parser.set_defaults(func=e2e.run_bench_e2e)

    from deploy.bench import console

    parser = benchmarks.add_parser(
        "console",
        help="page response times of a running console (search and person pages, p50/p99)",
    )
    console.register_arguments(parser)
    parser.set_defaults(func=console.run_bench)

    from deploy.bench import faults

    parser = benchmarks.add_parser(
        "faults",
        help="SIGKILL the stream worker, the sink and producers during a backfill on a "
             "private stack; then count lost, duplicated and differently clustered records",
    )
    faults.register_arguments(parser)
    parser.set_defaults(func=faults.run_bench_faults)


def _bench_serde(args: argparse.Namespace) -> int:
    from deploy.bench.serde import bench_serde, pin_to_one_core, report

    pinned = pin_to_one_core()
    measures, size = bench_serde(load_settings().client, args.records)
    print(report(measures, size, pinned))
    return 0


def _bench_stream(args: argparse.Namespace) -> int:
    from deploy.bench import stream

    if args.peers:
        from deploy.bench.stream_peers import run_peers

        figures = run_peers(load_settings(), args.events, args.partitions)
        return 0 if figures["complete"] else 1
    return stream.run(args)


def _bench_sink(args: argparse.Namespace) -> int:
    import psycopg

    from schemas import config

    try:
        return _run_bench_sink(args)
    except psycopg.OperationalError as error:
        print(f"tipsync bench sink: cannot reach PostgreSQL or lost it ({error}); start the "
              f"stack first (`tipsync stack up`, or `make stack`) and check "
              f"{config.DATABASE_URL}", file=sys.stderr)
        return 1


def _run_bench_sink(args: argparse.Namespace) -> int:
    if args.trickle:
        from deploy.bench.sink_trickle import run_trickle

        return run_trickle(load_settings(), args.rate, args.seconds, args.seed)
    if args.peers:
        from deploy.bench.sink_peers import run_peers

        return run_peers(load_settings(), args.changes, args.keys, args.partitions, args.seed)
    from deploy.bench.sink import run_benchmark

    return run_benchmark(load_settings(), args.changes, args.keys, args.batch_size, args.seed)
