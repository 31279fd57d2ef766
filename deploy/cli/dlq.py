"""``tipsync dlq``: dead letters an operator can work with (docs/OPERATIONS.md "Dead letters").

    tipsync dlq list [--stage S] [--reason R] [--json]
    tipsync dlq show ID [--json] [--payload]
    tipsync dlq replay --stage S [--reason R] [--dry-run] [--again]
    tipsync dlq audit [--json] [--limit N]

They run as the ``operator`` principal (read the dead-letter topics, write the stages'
inputs). ``list`` and ``show`` print ids, reasons and the format's headers, never a key or a
value; ``show --payload`` decodes the value, only as ``admin``, and records it in the audit
first. ``replay`` records each letter in the audit, then publishes it. Exit codes: 0 done;
1 a replay left letters it could not publish; 2 bad arguments or Kafka / PostgreSQL refused.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import sys
from typing import Any

from deploy.cli.options import add_client_config, add_topic_root, use_principal
from deploy.operations.dlq import (
    DeadLetterEntry,
    DeadLetterError,
    check_reason,
    entry_of,
    parse_dead_letter_id,
    plan_replay,
    render_entry,
    render_list,
    select,
    sink_golden_record,
)
from deploy.stack.principals import ADMIN, OPERATOR
from schemas import config
from schemas.client_config import USERNAME, ClientConfig
from schemas.dead_letters import REASONS
from schemas.topics import DLQ_STAGES, TopicNames

DATABASE_URL_HELP = f"libpq URI of the store holding the audit (default: {config.DATABASE_URL})"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dlq = subparsers.add_parser(
        "dlq", help="list, show and replay dead letters (what a stage could not process)",
        description="Dead letters of tip.dlq.<stage>: list them, show one (reason and"
        " metadata; the payload only as admin, audited), replay them once the cause is"
        " fixed (audited). See docs/OPERATIONS.md, Dead letters.",
    )
    commands = dlq.add_subparsers(dest="dlq_command", metavar="COMMAND")
    stage_help = f"the stage ({', '.join(DLQ_STAGES)})"
    reason_help = f"only this reason code ({', '.join(REASONS)})"

    listing = commands.add_parser("list", help="the dead letters, one line each (no payload)")
    listing.add_argument("--stage", choices=DLQ_STAGES, action="append", default=[],
                         help=stage_help + "; repeatable, default all")
    listing.add_argument("--reason", help=reason_help)
    listing.add_argument("--json", action="store_true", help="print JSON for machines")
    listing.set_defaults(func=_list)

    show = commands.add_parser("show", help="one dead letter's reason and metadata")
    show.add_argument("id", metavar="ID", help="<stage>:<partition>:<offset>, from `dlq list`")
    show.add_argument("--json", action="store_true", help="print JSON for machines")
    show.add_argument(
        "--payload", action="store_true",
        help="also decode the key and value (personal data): only as the admin principal,"
        " and recorded in the dead-letter audit first",
    )
    show.add_argument("--database-url", help=DATABASE_URL_HELP)
    show.set_defaults(func=_show)

    replay = commands.add_parser(
        "replay", help="publish dead letters again to their stage's input, once fixed")
    replay.add_argument("--stage", required=True, choices=DLQ_STAGES, help=stage_help)
    replay.add_argument("--reason", help=reason_help)
    replay.add_argument("--dry-run", action="store_true",
                        help="say what would be replayed; publish and record nothing")
    replay.add_argument("--again", action="store_true",
                        help="also replay letters the audit shows replayed before")
    replay.add_argument("--database-url", help=DATABASE_URL_HELP)
    replay.set_defaults(func=_replay)

    audit = commands.add_parser(
        "audit", help="who replayed or looked into which dead letter, and when")
    audit.add_argument("--json", action="store_true", help="print JSON for machines")
    audit.add_argument("--limit", type=int, default=100, help="rows, newest first (100)")
    audit.add_argument("--database-url", help=DATABASE_URL_HELP)
    audit.set_defaults(func=_audit)

    for parser in (listing, show, replay, audit):
        add_topic_root(parser)
        add_client_config(parser)
        use_principal(parser, OPERATOR)
    dlq.set_defaults(func=lambda _: dlq.print_help() or 2)


def _principal(client: ClientConfig) -> str:
    return dict(client.properties).get(USERNAME, "(no SASL user)")


def _audit_of(args: argparse.Namespace, settings: config.Settings) -> Any:
    from deploy.operations.dlq_audit import DeadLetterAudit

    return DeadLetterAudit(args.database_url or settings.database_url, args.topic_root,
                           getpass.getuser(), _principal(settings.client))


def _fail(command: str, error: Exception) -> int:
    print(f"tipsync dlq {command}: {error}", file=sys.stderr)
    return 2


def _list(args: argparse.Namespace) -> int:
    from deploy.operations.dlq_kafka import read_dead_letters

    names = TopicNames(args.topic_root)
    try:
        reason = check_reason(args.reason)
        settings = config.load_settings()
        entries: list[DeadLetterEntry] = []
        for stage in args.stage or DLQ_STAGES:
            entries += [entry_of(stage, message)
                        for message in read_dead_letters(settings.client, names, stage)]
    except DeadLetterError as error:
        return _fail("list", error)
    chosen = select(entries, reason)
    if args.json:
        print(json.dumps([entry.as_json() for entry in chosen], indent=2))
    else:
        print(render_list(chosen))
    return 0


def _show(args: argparse.Namespace) -> int:
    from deploy.operations.dlq_kafka import read_dead_letter

    if args.payload and args.client_config is None:
        config.use_local_principal(ADMIN)  # the clearance: the admin's own credentials
    names = TopicNames(args.topic_root)
    try:
        letter = parse_dead_letter_id(args.id)
        settings = config.load_settings()
        if args.payload and _principal(settings.client) != ADMIN:
            raise DeadLetterError(
                f"--payload shows personal data and is for the {ADMIN} principal only; this"
                f" command runs as '{_principal(settings.client)}'. Ask an administrator, or"
                " leave out --payload to see the reason and metadata"
            )
        entry = entry_of(letter.stage, read_dead_letter(settings.client, names, letter))
        payload = None
        if args.payload:
            _audit_of(args, settings).record("payload", [(entry, None)])
            payload = _decoded(settings, entry)
    except DeadLetterError as error:
        return _fail("show", error)
    if args.json:
        print(json.dumps({**entry.as_json(), **({"payload": payload} if payload else {})},
                         indent=2, default=str))
        return 0
    text = render_entry(entry)
    if payload is not None:
        text = text.rsplit("\n", 1)[0] + "\n  payload (recorded in the dead-letter audit)\n" \
            + json.dumps(payload, indent=2, default=str)
    print(text)
    return 0


def _decoded(settings: config.Settings, entry: DeadLetterEntry) -> dict[str, Any]:
    """The key and value as text: the value decoded with the registry when it decodes, its
    bytes in base64 otherwise (why it did not decode is the dead letter's reason)."""
    from schemas.registry import SchemaRegistry
    from schemas.serde import AvroDeserializer

    message = entry.message
    shown: dict[str, Any] = {
        "key": message.key.decode(errors="replace") if message.key is not None else None}
    if message.value is None:
        return {**shown, "value": None}
    try:
        with SchemaRegistry(settings.client.registry()) as registry:
            decoded = AvroDeserializer(registry)(message.value)
        return {**shown, "subject": decoded.subject, "schema_id": decoded.schema_id,
                "value": decoded.record}
    except Exception as error:  # noqa: BLE001 - a dead letter's value may be anything
        return {**shown, "value_base64": base64.b64encode(message.value).decode(),
                "not_decoded": type(error).__name__}


def _replay(args: argparse.Namespace) -> int:
    from deploy.operations.dlq_kafka import publish, read_dead_letters

    names = TopicNames(args.topic_root)
    try:
        stage, reason = args.stage, check_reason(args.reason)  # argparse checked the stage
        settings = config.load_settings()
        entries = select((entry_of(stage, message) for message
                          in read_dead_letters(settings.client, names, stage)), reason)
        audit = _audit_of(args, settings)
        plan = plan_replay(entries, names, audit.replayed(), again=args.again,
                           superseded=_superseded(settings, audit, entries, names))
        for _, why in plan.refused:
            print(f"left: {why}", file=sys.stderr)
        if plan.replayed_before:
            print(f"left {len(plan.replayed_before)} dead letter(s) replayed before (the"
                  " audit has them; --again replays them too)")
        if args.dry_run:
            for entry, target in plan.to_publish:
                print(f"would replay {entry.id} ({entry.reason}) to {target}")
            print(f"dry run: {len(plan.to_publish)} dead letter(s) would be replayed;"
                  " nothing published or recorded")
            return 0
        if plan.to_publish:
            audit_ids = audit.record("replay", list(plan.to_publish))
            placed = publish(settings.client, [
                (target, entry.source_partition, entry.message)
                for entry, target in plan.to_publish])
            audit.complete(audit_ids, placed)
    except DeadLetterError as error:
        return _fail("replay", error)
    targets = sorted({target for _, target in plan.to_publish})
    print(f"replayed {len(plan.to_publish)} dead letter(s) of {names.dlq(stage)}"
          + (f" to {', '.join(targets)}" if targets else "")
          + "; recorded in reconciled.dead_letter_audit")
    return 1 if plan.refused else 0


def _superseded(settings: config.Settings, audit: Any, entries: list[DeadLetterEntry],
                names: TopicNames) -> dict[str, tuple[int, int]]:
    """Sink letters whose golden record the store holds at the same or a newer version: ID ->
    (the letter's golden_version, the store's). The value is decoded in memory for its
    version only; nothing of it is printed."""
    from schemas.registry import SchemaRegistry
    from schemas.serde import AvroDeserializer

    records = {str(entry.id): record for entry in entries
               if (record := sink_golden_record(entry, names)) is not None}
    if not records:
        return {}
    stored = audit.stored_versions(sorted(set(records.values())))
    superseded: dict[str, tuple[int, int]] = {}
    with SchemaRegistry(settings.client.registry()) as registry:
        decode = AvroDeserializer(registry)
        for entry in entries:
            record = records.get(str(entry.id))
            if record is None or record not in stored or entry.message.value is None:
                continue
            try:
                version = int(decode(entry.message.value).record["golden_version"])
            except Exception:  # noqa: BLE001 - undecodable: the replay will tell, as before
                continue
            if stored[record] >= version:
                superseded[str(entry.id)] = (version, stored[record])
    return superseded


def _audit(args: argparse.Namespace) -> int:
    try:
        settings = config.load_settings()
        rows = _audit_of(args, settings).rows(args.limit)
    except DeadLetterError as error:
        return _fail("audit", error)
    if args.json:
        print(json.dumps([row.as_json() for row in rows], indent=2))
        return 0
    if not rows:
        print("no dead letter was replayed or shown with its payload")
        return 0
    for row in rows:
        where = (f" -> {row.target_topic}[{row.published_partition}]@{row.published_offset}"
                 if row.action == "replay" else "")
        done = "" if row.action != "replay" or row.completed_at else " (not acknowledged)"
        print(f"{row.requested_at:%Y-%m-%d %H:%M:%S%z}  {row.operator} as"
              f" {row.kafka_principal}: {row.action} {row.dead_letter_id} ({row.reason})"
              f"{where}{done}")
    return 0
