"""The sink's subcommands: ``db migrate``, ``sink``, ``search person``, ``bench sink``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from datetime import date
from pathlib import Path
from types import FrameType
from typing import Any

from deploy.cli.options import add_client_config, add_topic_root, use_principal
from deploy.stack.principals import SINK
from schemas import config
from schemas.config import load_settings
from schemas.topics import TOPICS, TopicNames
from sinks.roles import SINK_ROLE

DATABASE_URL_HELP = f"libpq URI (default: {config.DATABASE_URL})"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    db = subparsers.add_parser("db", help="the reconciled store in PostgreSQL")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION")
    db_commands.required = True
    migrate = db_commands.add_parser("migrate", help="apply pending SQL migrations")
    migrate.add_argument("--database-url", help=DATABASE_URL_HELP)
    migrate.set_defaults(func=_migrate)

    sink = subparsers.add_parser(
        "sink", help="consume the reconciled topics into PostgreSQL (runs until stopped)"
    )
    sink.add_argument("--group", default=None,
                      help=f"consumer group (default {TOPICS.sink_group}, under --topic-root)")
    add_topic_root(sink)
    add_client_config(sink)
    sink.add_argument(
        "--instance-id", default=None,
        help="static group member id: a restarted sink takes its partitions back at once"
             " (give each running sink its own)",
    )
    sink.add_argument("--batch-size", type=int, default=None, help="messages per transaction")
    sink.add_argument("--batch-seconds", type=float, default=None,
                      help="longest wait to fill a batch while there is more to read (a"
                           " batch is written as soon as the sink has caught up)")
    sink.add_argument(
        "--database-url",
        help=f"libpq URI of the sink's role (default: the store {config.DATABASE_URL} names,"
             f" as {SINK_ROLE}, its password in the same passfile)",
    )
    sink.add_argument(
        "--metrics-port", type=int, default=None,
        help=f"Prometheus endpoint on {config.METRICS_ADDRESS} (default 127.0.0.1), port"
             f" (default {config.SINK_METRICS_PORT} or"
             f" {config.DEFAULT_SINK_METRICS_PORT}; 0: none)",
    )
    sink.add_argument("--verbose", action="store_true", help="log every retry and batch")
    use_principal(sink, SINK)
    sink.set_defaults(func=_sink)

    search = subparsers.add_parser("search", help="find records in the reconciled store")
    search_commands = search.add_subparsers(dest="search_command", metavar="WHAT")
    search_commands.required = True
    person = search_commands.add_parser(
        "person", help="fuzzy search of people by name (misspellings welcome)"
    )
    person.add_argument("name", help='a name, e.g. "Tamika Brown"')
    person.add_argument("--dob", type=_iso_date, help="date of birth YYYY-MM-DD (ranks higher)")
    # Always as an analyst: the owner's default URL would see every row (refused anyway).
    where = person.add_mutually_exclusive_group(required=True)
    where.add_argument("--database-url", help="libpq URI of an analyst's login")
    where.add_argument(
        "--connection", type=Path, metavar="FILE",
        help="the connection file `tipsync analyst add` wrote: search as that analyst,"
             " within their clearance",
    )
    person.set_defaults(func=_search_person)



def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a date; write it as YYYY-MM-DD, e.g. 1994-05-01"
        ) from None


def _database_url(args: argparse.Namespace) -> str:
    return args.database_url or load_settings().database_url


def _migrate(args: argparse.Namespace) -> int:
    from sinks.migrate import MigrationError, migrate

    try:
        applied = migrate(_database_url(args))
    except MigrationError as error:
        print(f"tipsync db migrate: {error}", file=sys.stderr)
        return 1
    if applied:
        for migration in applied:
            print(f"applied {migration.file_name}")
    else:
        print("the reconciled store is up to date")
    return 0


def _sink(args: argparse.Namespace) -> int:
    import os

    from sinks.consumer import ReconciledSink, SinkOptions
    from sinks.metrics import SinkMetrics, metrics_port
    from sinks.migrate import MigrationError

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    overrides: dict[str, Any] = {}
    for option, name in (("group", "consumer_group"), ("instance_id", "instance_id"),
                         ("batch_size", "batch_size"), ("batch_seconds", "batch_seconds")):
        if getattr(args, option) is not None:
            overrides[name] = getattr(args, option)
    stopping = False

    def stop(_signal: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        port = metrics_port(args.metrics_port, os.environ)
    except ValueError as error:
        print(f"tipsync sink: {error}", file=sys.stderr)
        return 2
    metrics = SinkMetrics()
    stop_serving = metrics.serve(port) if port is not None else None
    options = SinkOptions.under(TopicNames(args.topic_root), **overrides)
    sink = ReconciledSink(load_settings(), options, args.database_url, metrics)
    try:
        statistics = sink.run(lambda: stopping)
    except MigrationError as error:
        print(f"tipsync sink: {error}", file=sys.stderr)
        return 1
    finally:
        if stop_serving is not None:
            stop_serving()
    print(
        f"sink stopped after {statistics.batches} batches: {statistics.messages} messages,"
        f" {statistics.changes_written} changes written, {statistics.dead_letters} dead letters"
    )
    return 0


def _search_person(args: argparse.Namespace) -> int:
    import psycopg

    from deploy.operations.analysts import AnalystError, read_connection_file
    from sinks.search import SearchRefused, format_table, search_person

    try:
        conninfo = (read_connection_file(args.connection) if args.connection
                    else args.database_url)
    except AnalystError as error:
        print(f"tipsync search person: {error}", file=sys.stderr)
        return 2
    try:
        with psycopg.connect(conninfo, connect_timeout=10) as connection:
            rows = search_person(connection, args.name, args.dob)
    except SearchRefused as error:
        print(f"tipsync search person: {error}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as error:
        print(f"tipsync search person: cannot reach PostgreSQL ({error}); check"
              f" `tipsync stack status` and {config.DATABASE_URL}", file=sys.stderr)
        return 1
    except psycopg.errors.UndefinedFunction:
        print("tipsync search person: the reconciled store has no search function yet;"
              " run `tipsync db migrate`", file=sys.stderr)
        return 1
    print(format_table(rows) if rows else f"no person matches '{args.name}'")
    return 0
