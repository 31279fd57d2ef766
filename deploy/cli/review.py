"""``tipsync review``: the stewards' review queue and their decisions.

    tipsync review list [--json] [--agency ID] [--min-score S] [--connection FILE]
    tipsync review show PAIR_ID [--json] [--connection FILE]
    tipsync review decide (--same | --different | --withdraw) A_KEY B_KEY [--reason TEXT]
                          [--connection FILE]
    tipsync review split GOLDEN_ID [--json] [--connection FILE]

Every action runs as the steward's own login to the store: the connection file ``tipsync
analyst add NAME --steward --clearance C --out FILE`` wrote (``--connection FILE``, else
``config.STEWARD_CONNECTION``). So row-level security shows only the pairs and records the
steward's clearance covers, the persons shown are in the read audit, and a decision names the
login as its steward; the owner, the sink and analysts who are not stewards are refused
(``deploy.stewardship.login``). Keys are ``<agency_id>:<source_record_id>``; PAIR_ID is the
12-digit id ``list`` prints, or the pair key ``<a key>|<b key>``. Exit codes: 0 done; 1 not
found, or Kafka / PostgreSQL refused; 2 bad arguments, or not a steward's login; 3
(``decide``) refused: the decision contradicts decisions in force (a cannot-linked pair would
become one person through must-links; the message names them), or names a record the store
holds beyond the steward's clearance. What it does: ``deploy.stewardship.review``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deploy.cli.options import add_client_config, add_topic_root, use_principal
from deploy.stack.principals import STEWARD
from schemas import config
from schemas.config import load_settings
from schemas.topics import TopicNames

CONNECTION_HELP = (
    "the steward's connection file (`tipsync analyst add NAME --steward ... --out FILE`);"
    f" default {config.STEWARD_CONNECTION}"
)
DATABASE_URL_HELP = "a steward's libpq URI instead of --connection (its password in a passfile)"
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
    # Gone: the decision names the login (--connection). Kept only to say so to old scripts.
    decide.add_argument("--steward", metavar="NAME", help=argparse.SUPPRESS)
    decide.add_argument("--reason", metavar="TEXT", help="why, in a sentence")
    split = commands.add_parser(
        "split", help="a golden person's source records and the exact `decide --different` "
        "commands that separate them",
    )
    split.add_argument("golden_id", metavar="GOLDEN_ID", help="a golden person id")
    split.add_argument("--json", action="store_true", help="one JSON document")
    split.set_defaults(func=_split)
    for parser in (listing, show, decide):
        add_topic_root(parser)
        add_client_config(parser)
        use_principal(parser, STEWARD)
    for parser in (listing, show, decide, split):
        login = parser.add_mutually_exclusive_group()
        login.add_argument("--connection", type=Path, metavar="FILE", help=CONNECTION_HELP)
        login.add_argument("--database-url", help=DATABASE_URL_HELP)
    listing.set_defaults(func=_list)
    show.set_defaults(func=_show)
    decide.set_defaults(func=_decide)


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, default=str, ensure_ascii=False))


class _Refused(Exception):
    """Said on stderr already; the exit code is ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@contextmanager
def _as_steward(args: argparse.Namespace, what: str) -> Iterator[tuple[Any, str]]:
    """The steward's connection and login name; ``_Refused`` (said on stderr) otherwise."""
    import psycopg

    from deploy.stewardship.login import StewardRefused, connect_as_steward, steward_conninfo

    try:
        connection, steward = connect_as_steward(
            steward_conninfo(args.connection, args.database_url))
    except StewardRefused as error:
        print(f"tipsync review {what}: {error}", file=sys.stderr)
        raise _Refused(2) from None
    except psycopg.OperationalError as error:
        print(f"tipsync review {what}: cannot reach PostgreSQL as the steward ({error});"
              " check `tipsync stack status` and the connection file", file=sys.stderr)
        raise _Refused(1) from None
    with connection:
        try:
            yield connection, steward
        except (psycopg.errors.UndefinedFunction, psycopg.errors.CheckViolation):
            # the read audit's review paths and held_person_sources come with migration 0012
            print(f"tipsync review {what}: the reconciled store is older than this command"
                  " (no migration 0012); run `tipsync db migrate`", file=sys.stderr)
            raise _Refused(1) from None


def _queue_call(args: argparse.Namespace, what: str,
                call: Callable[[Any, dict[str, Any]], Any]) -> Any:
    from deploy.stewardship.review import read_decisions

    with _as_steward(args, what) as (connection, _):
        decisions = read_decisions(load_settings(), TopicNames(args.topic_root))
        return call(connection, decisions)


def _list(args: argparse.Namespace) -> int:
    from deploy.stewardship.review import format_pairs, open_pairs

    try:
        pairs = _queue_call(args, "list", lambda connection, decisions: open_pairs(
            connection, decisions, args.agency, args.min_score))
    except _Refused as stop:
        return stop.code
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

    try:
        _queue_call(args, "show", lookup)
    except _Refused as stop:
        return stop.code
    if found[0] is None:
        print(f"tipsync review show: no match decision about pair {args.pair}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(found[0].to_json())
    else:
        print(format_pairs(found))
    return 0


def _decide(args: argparse.Namespace) -> int:
    from deploy.stewardship.login import beyond_clearance
    from deploy.stewardship.review import contradiction, publish_decision, read_decisions
    from schemas.stewardship import canonical_pair, pair_id, steward_decision

    option = next(name for name in KINDS if getattr(args, name))
    first, second = getattr(args, option)
    if args.steward is not None:
        print("tipsync review decide: --steward is gone: a decision names the steward's own"
              " login, so nobody can decide in another's name; give your connection file"
              f" (--connection FILE or {config.STEWARD_CONNECTION}) and leave --steward out",
              file=sys.stderr)
        return 2
    try:
        canonical_pair(first, second)  # two different keys, before asking the store
        with _as_steward(args, "decide") as (connection, steward):
            hidden = beyond_clearance(connection, [first, second])
    except ValueError as error:
        print(f"tipsync review decide: {error}", file=sys.stderr)
        return 2
    except _Refused as stop:
        return stop.code
    if hidden:
        print(f"tipsync review decide: refused: the store holds {' and '.join(hidden)} beyond"
              f" the clearance of {steward}, so {steward} may not decide about"
              f" {'them' if len(hidden) > 1 else 'it'}; a steward whose clearance covers both"
              " records decides this pair", file=sys.stderr)
        return 3
    decision = steward_decision(first, second, KINDS[option], steward, args.reason)
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
    print(f"{decision.kind} {first} {second}: decision {decision.decision_id} by {steward}"
          f" (pair {pair_id(first, second)}) published to {topics.stewardship_decisions}")
    return 0


def _split(args: argparse.Namespace) -> int:
    import uuid

    from deploy.stewardship.split import format_split, golden_sources

    try:
        uuid.UUID(args.golden_id)
    except ValueError:
        print(f"tipsync review split: '{args.golden_id}' is not a golden person id (a UUID, "
              "as `tipsync analyst` and the feeds show it)", file=sys.stderr)
        return 2
    try:
        with _as_steward(args, "split") as (connection, _):
            found = golden_sources(connection, args.golden_id)
    except _Refused as stop:
        return stop.code
    if args.json:
        _print_json(found.to_json())
    else:
        print(format_split(found))
    return 0 if found.sources else 1
