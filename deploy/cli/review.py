"""``tipsync review``: the stewards' review queue and their decisions.

    tipsync review list [--json] [--agency ID] [--min-score S]
    tipsync review show PAIR_ID [--json]
    tipsync review decide (--same | --different | --withdraw) A_KEY B_KEY --steward NAME
                          [--reason TEXT]
    tipsync review split GOLDEN_ID [--json]

Keys are ``<agency_id>:<source_record_id>``; PAIR_ID is the 12-digit id ``list`` prints, or
the pair key ``<a key>|<b key>``. Exit codes: 0 done; 1 not found, or Kafka / PostgreSQL
refused; 2 bad arguments; 3 (``decide``) refused: the decision contradicts decisions in force
(a cannot-linked pair would become one person through must-links; the message names them).
What it does: ``deploy.stewardship.review``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from deploy.cli.options import add_client_config, add_topic_root, use_principal
from deploy.stack.principals import STEWARD
from schemas import config
from schemas.config import load_settings
from schemas.topics import TopicNames

DATABASE_URL_HELP = f"libpq URI (default: {config.DATABASE_URL})"
KINDS = {"same": "MUST_LINK", "different": "CANNOT_LINK", "withdraw": "WITHDRAWN"}


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    review = subparsers.add_parser(
        "review", help="stewards: pairs the resolver is not sure about, and decisions on them"
    )
    commands = review.add_subparsers(dest="review_command", metavar="ACTION")
    commands.required = True

    listing = commands.add_parser(
        "list", help="open pairs (latest match decision REVIEW, no steward decision in force)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON document")
    listing.add_argument("--agency", metavar="ID", help="only pairs with a record of this agency")
    listing.add_argument("--min-score", type=float, metavar="S", help="only pairs scoring >= S")
    show = commands.add_parser("show", help="one pair, open or decided")
    show.add_argument("pair", metavar="PAIR_ID", help="the id `review list` prints, or A|B")
    show.add_argument("--json", action="store_true", help="one JSON document")
    decide = commands.add_parser(
        "decide", help="decide a pair: the same person (must-link), different people "
        "(cannot-link), or withdraw an earlier decision; the resolver honours it for good",
    )
    kind = decide.add_mutually_exclusive_group(required=True)
    for option, help_text in (("same", "the two records are the same person (must-link)"),
                              ("different", "they are different people (cannot-link)"),
                              ("withdraw", "the pair is the resolver's alone again")):
        kind.add_argument(f"--{option}", nargs=2, metavar=("A_KEY", "B_KEY"), help=help_text)
    decide.add_argument("--steward", required=True, metavar="NAME",
                        help="who decides (recorded with the decision)")
    decide.add_argument("--reason", metavar="TEXT", help="why, in a sentence")
    split = commands.add_parser(
        "split", help="a golden person's source records and the exact `decide --different` "
        "commands that separate them",
    )
    split.add_argument("golden_id", metavar="GOLDEN_ID", help="a golden person id")
    split.add_argument("--json", action="store_true", help="one JSON document")
    split.add_argument("--database-url", help=DATABASE_URL_HELP)
    split.set_defaults(func=_split)
    for parser in (listing, show, decide):
        add_topic_root(parser)
        add_client_config(parser)
    for parser in (listing, show):
        parser.add_argument("--database-url", help=DATABASE_URL_HELP)
    listing.set_defaults(func=_list)
    show.set_defaults(func=_show)
    use_principal(decide, STEWARD)
    decide.set_defaults(func=_decide)


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, default=str, ensure_ascii=False))


def _queue_call(args: argparse.Namespace, what: str, call: Any) -> Any:
    import psycopg

    from deploy.stewardship.review import read_decisions

    settings = load_settings()
    decisions = read_decisions(settings, TopicNames(args.topic_root))
    try:
        with psycopg.connect(args.database_url or settings.database_url,
                             connect_timeout=10) as connection:
            return call(connection, decisions)
    except psycopg.OperationalError as error:
        print(f"tipsync review {what}: cannot reach PostgreSQL ({error}); check"
              f" `tipsync stack status` and {config.DATABASE_URL}", file=sys.stderr)
        return None


def _list(args: argparse.Namespace) -> int:
    from deploy.stewardship.review import format_pairs, open_pairs

    pairs = _queue_call(args, "list", lambda connection, decisions: open_pairs(
        connection, decisions, args.agency, args.min_score))
    if pairs is None:
        return 1
    if args.json:
        _print_json([pair.to_json() for pair in pairs])
    else:
        print(format_pairs(pairs) if pairs else "no open pair to review")
    return 0


def _show(args: argparse.Namespace) -> int:
    from deploy.stewardship.review import find_pair, format_pairs

    found: list[Any] = []

    def lookup(connection: Any, decisions: dict[str, Any]) -> bool:
        found.append(find_pair(connection, args.pair, decisions))
        return True

    if _queue_call(args, "show", lookup) is None:
        return 1
    if found[0] is None:
        print(f"tipsync review show: no match decision about pair {args.pair}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(found[0].to_json())
    else:
        print(format_pairs(found))
    return 0


def _decide(args: argparse.Namespace) -> int:
    from deploy.stewardship.review import contradiction, publish_decision, read_decisions
    from schemas.stewardship import pair_id, steward_decision

    option = next(name for name in KINDS if getattr(args, name))
    first, second = getattr(args, option)
    try:
        decision = steward_decision(first, second, KINDS[option], args.steward, args.reason)
    except ValueError as error:
        print(f"tipsync review decide: {error}", file=sys.stderr)
        return 2
    topics = TopicNames(args.topic_root)
    settings = load_settings()
    try:
        refused = contradiction(read_decisions(settings, topics), decision)
        if refused is not None:
            print(f"tipsync review decide: refused: {refused}", file=sys.stderr)
            return 3
        publish_decision(settings, topics, decision)
    except (RuntimeError, TimeoutError) as error:
        print(f"tipsync review decide: {error}", file=sys.stderr)
        return 1
    print(f"{decision.kind} {first} {second}: decision {decision.decision_id} (pair "
          f"{pair_id(first, second)}) published to {topics.stewardship_decisions}")
    return 0


def _split(args: argparse.Namespace) -> int:
    import uuid

    import psycopg

    from deploy.stewardship.split import format_split, golden_sources

    try:
        uuid.UUID(args.golden_id)
    except ValueError:
        print(f"tipsync review split: '{args.golden_id}' is not a golden person id (a UUID, "
              "as `tipsync analyst` and the feeds show it)", file=sys.stderr)
        return 2
    try:
        with psycopg.connect(args.database_url or load_settings().database_url,
                             connect_timeout=10) as connection:
            found = golden_sources(connection, args.golden_id)
    except psycopg.OperationalError as error:
        print(f"tipsync review split: cannot reach PostgreSQL ({error}); check"
              f" `tipsync stack status` and {config.DATABASE_URL}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(found.to_json())
    else:
        print(format_split(found))
    return 0 if found.sources else 1
