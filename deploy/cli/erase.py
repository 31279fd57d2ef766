"""``tipsync erase`` and ``tipsync retention enforce``: removing records through the pipeline.

What an erasure does, step by step, is ``deploy.operations.erasure``'s docstring; what it
leaves and until when, docs/SECURITY.md "Erasure and retention".
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING

from deploy.cli.options import add_client_config, add_topic_root
from schemas import config

if TYPE_CHECKING:
    from deploy.operations.erasure import Eraser, ErasureReport

DATABASE_URL_HELP = (
    "libpq URI of the store's owner (it reads every source record, whatever its label, and"
    f" writes reconciled.erasure_log); default {config.DATABASE_URL}"
)
WAIT_HELP = "how long to wait for the stream workers and the sink to pass the DELETEs"
DAY_SECONDS = 24 * 3600


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    erase = subparsers.add_parser(
        "erase",
        help="erase a source record (or every source of a golden person) everywhere tipsync"
        " keeps it, through the pipeline",
    )
    target = erase.add_mutually_exclusive_group(required=True)
    target.add_argument("--agency", metavar="ID", help="the record's agency")
    target.add_argument("--person", metavar="GOLDEN_ID",
                        help="every source record of this golden person, and the links that"
                        " end at it")
    erase.add_argument("--record", metavar="RID", help="the record's id at its agency")
    erase.add_argument("--consent", metavar="REF",
                       help="with --agency: every record the agency shared under this consent"
                       " reference (consent withdrawn), of every entity")
    erase.add_argument("--entity", default="person",
                       help="the record's entity (its agency topic's); default person")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _common(erase)
    erase.set_defaults(func=_erase)

    retention = subparsers.add_parser(
        "retention", help="records past their retention date (retention_until)"
    )
    commands = retention.add_subparsers(dest="retention_command", metavar="ACTION")
    commands.required = True
    enforce = commands.add_parser(
        "enforce", help="erase every source record whose retention_until has passed"
    )
    enforce.add_argument("--dry-run", action="store_true",
                         help="count the records per agency, erase nothing")
    enforce.add_argument("--every", type=float, default=None, metavar="SECONDS",
                         help=f"run again every SECONDS until stopped (daily: {DAY_SECONDS})")
    _common(enforce)
    enforce.set_defaults(func=_enforce)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help=DATABASE_URL_HELP)
    parser.add_argument("--wait", type=float, default=300.0, metavar="SECONDS", help=WAIT_HELP)
    add_topic_root(parser)
    add_client_config(parser)


def _eraser(args: argparse.Namespace) -> tuple[Eraser, str]:
    from deploy.operations.erasure import Eraser
    from schemas.config import load_settings
    from schemas.topics import TopicNames

    settings = load_settings()
    database_url = args.database_url or settings.database_url
    return Eraser(settings.client, database_url, TopicNames(args.topic_root),
                  getpass.getuser(), args.wait), database_url


def _erase(args: argparse.Namespace) -> int:
    import uuid

    import psycopg
    from confluent_kafka import KafkaException

    from deploy.operations.erasure import (
        ErasureError,
        consent_targets,
        person_targets,
        record_targets,
    )

    if args.agency and bool(args.record) == bool(args.consent):
        print("tipsync erase: --agency needs one of --record RID (the record's id at the"
              " agency) or --consent REF (every record shared under that consent)",
              file=sys.stderr)
        return 2
    if args.person and args.consent:
        print("tipsync erase: --consent goes with --agency (the agency whose consent"
              " reference it is), not with --person", file=sys.stderr)
        return 2
    if args.person:
        try:
            uuid.UUID(args.person)
        except ValueError:
            print(f"tipsync erase: --person '{args.person[:80]}' is not a golden person id"
                  " (a UUID, as reconciled.person.person_id shows it)", file=sys.stderr)
            return 2
    try:
        eraser, database_url = _eraser(args)
        if args.person:
            targets = person_targets(database_url, args.person)
        elif args.consent:
            eraser.topics.agency(args.agency, "person")  # a malformed id stops here
            targets = consent_targets(database_url, args.agency, args.consent)
        else:
            eraser.topics.agency(args.agency, args.entity)  # a malformed id stops here
            targets = record_targets(database_url, args.entity, args.agency, args.record)
        names = ", ".join(f"{t.entity} {t.source_key}" for t in targets)
        if not args.yes and not _confirm(f"erase {len(targets)} source record(s): {names}?"):
            print("nothing erased", file=sys.stderr)
            return 1
        started = time.monotonic()
        report = eraser.erase(targets, "request", requested_person=args.person)
        report.seconds = time.monotonic() - started
    except (ErasureError, ValueError) as error:
        print(f"tipsync erase: {error}", file=sys.stderr)
        return 2
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
        print("tipsync erase: the store has no erasure log, retention or consent columns yet"
              " (migrations 0008, 0009): run `tipsync db migrate` on it first", file=sys.stderr)
        return 2
    except (psycopg.Error, KafkaException) as error:
        print(f"tipsync erase: the store or Kafka failed ({type(error).__name__}); check"
              " `tipsync stack status` and run the same command again (the erasure log holds"
              " what was asked)", file=sys.stderr)
        return 2
    for unknown in report.unknown:
        print(f"not found: {unknown.entity} {unknown.source_key} is neither in the store nor"
              " on its agency topic (erased already, or never published)")
    if not report.erased:
        return 1 if report.unknown else 0
    _print_report(report)
    return 0


def _print_report(report: ErasureReport) -> None:
    print(f"erased {len(report.erased)} source record(s): "
          + ", ".join(f"{t.entity} {t.source_key}" for t in report.erased)
          + f" in {report.seconds:.1f} s"
          + f" (reconciled.erasure_log ids {', '.join(map(str, report.log_ids))})")
    print("copies removed:")
    for line in report.removed:
        print(f"  {line}")
    print("copies that may remain, until:")
    for deadline in report.remaining:
        print(f"  {deadline.topic}: until {deadline.until.isoformat(timespec='seconds')}"
              f" ({deadline.explanation})")
    print("  resolve snapshots of a worker that does not hold the resolve partition now: until"
          " it next takes it (its rebuild meets the tombstone and deletes them); a retired"
          " worker's data folder must be deleted (docs/SECURITY.md)")
    print("  outside tipsync: the agency's own system and producer checkpoint (the agency"
          " must erase at source: a record it publishes again comes back); backups")


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        print(f"tipsync erase: {question} needs confirmation: add --yes", file=sys.stderr)
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _enforce(args: argparse.Namespace) -> int:
    """Once, or (``--every``) until stopped: a run that fails is reported and the next one
    tries again (what it erased is in the log; what it did not, it finds again)."""
    import psycopg
    from confluent_kafka import KafkaException

    from deploy.operations.erasure import ErasureError

    while True:
        try:
            status = _enforce_once(args)
        except ErasureError as error:
            print(f"tipsync retention enforce: {error}", file=sys.stderr)
            status = 2
        except (psycopg.Error, KafkaException) as error:
            print(f"tipsync retention enforce: the store or Kafka failed"
                  f" ({type(error).__name__}); check `tipsync stack status`, the next run"
                  " tries again", file=sys.stderr)
            status = 2
        if args.every is None:
            return status
        time.sleep(args.every)


def _enforce_once(args: argparse.Namespace) -> int:
    from deploy.operations.erasure import expired_targets
    from deploy.operations.erasure_plan import utc_today

    eraser, database_url = _eraser(args)
    today = utc_today()
    targets = expired_targets(database_url, today)
    counts = Counter(target.agency_id for target in targets)
    verb = "past retention (dry run, nothing erased)" if args.dry_run else "erased"
    print(f"retention enforce {today.isoformat()}: {len(targets)} source record(s) {verb}")
    for agency_id, count in sorted(counts.items()):
        print(f"  {agency_id}: {count}")
    if args.dry_run or not targets:
        return 0
    started = time.monotonic()
    report = eraser.erase(targets, "retention")
    report.seconds = time.monotonic() - started
    _print_report(report)
    return 0
