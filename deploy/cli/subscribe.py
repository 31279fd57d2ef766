"""``tipsync subscribe``: an agency's feed into its own files or database.

    tipsync subscribe --agency ID [--client-config FILE] --to DIR
    tipsync subscribe --agency ID [--client-config FILE] --to postgresql://...

Runs until SIGINT or SIGTERM (the batch in hand is stored first), or with ``--idle-exit S``
until nothing arrived for S seconds; prints one JSON summary line. Exit codes: 0 stopped;
1 Kafka, the registry or the target refused (the message says which); 2 bad arguments.
What it does: ``producers.subscribe`` and ``producers.feed_targets`` (docs/STREAMS.md
"Feeds to agencies").
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from deploy.cli.options import add_client_config, add_topic_root
from producers.feed_targets import DEFAULT_ROTATE_BYTES
from schemas.topics import TopicNames

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    subscribe = subparsers.add_parser(
        "subscribe", help="an agency: receive its feed tip.outbound.<id> into files or its "
        "own PostgreSQL (resumable: nothing lost, nothing twice)",
    )
    subscribe.add_argument("--agency", required=True, metavar="ID", help="your agency id")
    subscribe.add_argument(
        "--to", required=True, metavar="DIR|postgresql://...",
        help="a folder for JSON Lines files, or a libpq URI of your database (its password "
        "in a passfile or PGPASSFILE, never in the URI); table tipsync_feed.message",
    )
    subscribe.add_argument("--rotate-mb", type=int, default=DEFAULT_ROTATE_BYTES >> 20,
                           metavar="MB", help="JSON Lines: start a new file after MB mebibytes")
    subscribe.add_argument("--idle-exit", type=float, default=None, metavar="S",
                           help="stop when nothing arrived for S seconds (default: run on)")
    add_topic_root(subscribe)
    add_client_config(subscribe)
    subscribe.set_defaults(func=_subscribe)


def _target(args: argparse.Namespace) -> Any:
    from producers.feed_targets import JsonLinesTarget, PostgresTarget
    from producers.sql_source import dsn_without_secrets

    if args.to.startswith(POSTGRES_SCHEMES):
        if dsn_without_secrets(args.to) != args.to:
            raise ValueError(
                "--to carries a password; put it in a passfile (passfile=... in the URI, or "
                "PGPASSFILE) so it never shows on a command line"
            )
        return PostgresTarget(args.to)
    return JsonLinesTarget(Path(args.to), args.agency, rotate_bytes=args.rotate_mb << 20)


def _subscribe(args: argparse.Namespace) -> int:
    import psycopg

    from producers.sql_source import SourceTableError
    from producers.subscribe import SubscribeError, Subscription
    from schemas.agencies import validate_agency_id
    from schemas.config import load_settings

    try:
        validate_agency_id(args.agency)
        target = _target(args)
    except (ValueError, SourceTableError) as error:
        print(f"tipsync subscribe: {error}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as error:
        print(f"tipsync subscribe: cannot reach the database of --to ({error})",
              file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stopping: list[int] = []
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda number, _frame: stopping.append(number))
    subscription = Subscription(load_settings().client, TopicNames(args.topic_root),
                                args.agency, target)
    try:
        summary = subscription.run(lambda: bool(stopping), idle_seconds=args.idle_exit)
    except (SubscribeError, psycopg.Error, OSError) as error:
        print(f"tipsync subscribe: {error}", file=sys.stderr)
        return 1
    finally:
        subscription.close()
    print(json.dumps({"agency": args.agency, "topic": subscription.topic,
                      "messages": summary.messages, "batches": summary.batches}))
    return 0
