"""``tipsync produce`` (files and SQL tables).

The imperative shell: parses options, loads the agency and the mapping, wires the source,
the change tracker, Kafka and the registry together, and prints one JSON summary line.
Exit codes: 0 the run completed (rejected rows included), 1 a fatal error before or during
the run (nothing is marked published that Kafka did not acknowledge), 3 some events were not
acknowledged (rerun to publish them).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploy.cli.options import (
    AGENCY_CREDENTIALS,
    add_client_config,
    add_topic_root,
    use_principal,
)
from producers.canonical import Entity
from producers.checkpoint import CheckpointStore, source_folder
from producers.delivery import DeliveryError, Publisher
from producers.encoding import EncodingSetupError, make_serializer
from producers.events import Governance
from producers.file_source import FileOptions, produce_file
from producers.mapping import AgencyMapping, MappingError, load_mapping
from producers.readers import FileError
from producers.rejects import RejectsFile
from producers.sql_source import (
    SourceTableError,
    TableOptions,
    dsn_without_secrets,
    produce_table,
)
from producers.tracker import ChangeTracker, UnacknowledgedError
from schemas.config import Settings, load_settings
from schemas.enums import Classification
from schemas.topics import TopicNames

EXIT_FATAL = 1
EXIT_UNACKNOWLEDGED = 3


class FatalError(RuntimeError):
    """Stops a run before anything is published, with a message for the operator."""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    produce = subparsers.add_parser(
        "produce",
        help="publish an agency's changes (export file or SQL table) to Kafka",
        description=(
            "Publish the changes of an agency's export file (CSV or JSON Lines) or SQL table. "
            "Prints one JSON line: read, published, unchanged, rejected, rejects_file, "
            "flagged (values left out as data-quality issues), quality_file. "
            "See docs/PRODUCERS.md."
        ),
    )
    produce.add_argument("--agency", required=True, help="agency id, e.g. police-ctu")
    produce.add_argument(
        "--entity", required=True, choices=[entity.value for entity in Entity]
    )
    source = produce.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, help="CSV or JSON Lines export")
    source.add_argument("--sql", metavar="DSN", help="libpq URI of the agency's PostgreSQL")
    produce.add_argument("--table", help="source table (with --sql), e.g. public.people")
    produce.add_argument("--mapping", type=Path, help="YAML mapping of the agency's columns")
    produce.add_argument(
        "--full-export", action="store_true",
        help="the file holds every record: publish DELETEs for records that left it",
    )
    produce.add_argument(
        "--source-name",
        help="stable name of the source for its checkpoint (default: the file's absolute "
        "path, or DSN + table); give one when each export has a new file name",
    )
    produce.add_argument("--watermark-column", default="updated_at")
    produce.add_argument("--primary-key", help="the table's key column (default: the "
                         "column that holds source_record_id)")
    produce.add_argument("--follow", action="store_true", help="keep polling the table")
    produce.add_argument("--poll-interval", type=float, default=5.0, help="seconds")
    produce.add_argument(
        "--full-compare-every", type=int, default=0, metavar="POLLS",
        help="compare the table's keys with the checkpoint every POLLS polls and DELETE the "
        "missing (0: never; with a soft-delete column it is not needed)",
    )
    produce.add_argument(
        "--classification", choices=Classification.symbols(),
        help="label this run's events (default: the agency's; lower only where the agency "
        "registry allows it: may_lower_classification)",
    )
    produce.add_argument("--legal-basis", help="override the agency's default legal basis")
    produce.add_argument("--consent-ref", help="consent record (with --legal-basis CONSENT)")
    produce.add_argument("--retention-days", type=int, help="override the agency's retention")
    add_topic_root(produce)
    add_client_config(produce)
    produce.add_argument("--no-progress", action="store_true", help="no progress bar")
    use_principal(produce, AGENCY_CREDENTIALS)
    produce.set_defaults(func=run_produce)


def run_produce(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        return _produce(args, settings)
    except (
        FatalError, MappingError, FileError, DeliveryError, SourceTableError, EncodingSetupError
    ) as error:
        print(f"tipsync produce: {error}", file=sys.stderr)
        return EXIT_FATAL


def _produce(args: argparse.Namespace, settings: Settings) -> int:
    entity = Entity(args.entity)
    governance = _governance(args)
    mapping = _mapping(args, entity)
    if args.sql and not args.table:
        raise FatalError("--sql needs --table naming the source table")
    if args.file is not None:
        source = args.source_name or str(args.file.resolve())
        if not args.file.is_file():
            raise FatalError(f"{args.file} is not a file; check the path")
    else:
        # Parsed before anything is written: a password never reaches source.txt or a log.
        source = args.source_name or f"{dsn_without_secrets(args.sql)} {args.table}"
    topics = _topics(args.agency, args.topic_root)
    publisher = Publisher(settings.client)
    entities: list[Entity] = [entity, Entity.LINK] if entity is Entity.PERSON else [entity]
    publisher.check_topics([topics(item) for item in entities])
    serialize = make_serializer(settings, entities, args.agency, governance)

    folder = source_folder(settings.home, args.agency, entity.value, source)
    if args.sql and not args.source_name:
        _adopt_checkpoint_named_with_a_password(
            source_folder(settings.home, args.agency, entity.value,
                          f"{_legacy_source_name(args.sql)} {args.table}"),
            folder,
            source,
        )
    store = CheckpointStore(folder, source)
    rejects = RejectsFile(folder, args.file.name if args.file else args.table)
    tracker = ChangeTracker(args.agency, store, publisher, serialize, topics, governance)
    exit_code = 0
    try:
        if args.file is not None:
            read = produce_file(
                FileOptions(args.file, entity, mapping, args.full_export, not args.no_progress),
                tracker,
                rejects,
            )
            tracker.finish()
        else:
            read = produce_table(
                TableOptions(
                    dsn=args.sql, table=args.table, entity=entity, mapping=mapping,
                    watermark_column=args.watermark_column, primary_key=args.primary_key,
                    follow=args.follow, poll_interval=args.poll_interval,
                    full_compare_every=args.full_compare_every,
                ),
                tracker,
                rejects,
            )
            tracker.finish()
    except UnacknowledgedError as error:
        print(f"tipsync produce: {error}", file=sys.stderr)
        read, exit_code = -1, EXIT_UNACKNOWLEDGED
    except KeyboardInterrupt:
        # Keep what Kafka already acknowledged; the rest is published by the next run.
        tracker.finish(timeout=10)
        raise
    finally:
        rejects.close()
        store.close()
        publisher.close()
    counts = tracker.counts
    summary: dict[str, Any] = {
        "read": read if read >= 0 else None,
        "published": counts.published,
        "unchanged": counts.unchanged,
        "rejected": rejects.count,
        "rejects_file": rejects.written,
        "flagged": rejects.flagged,
        "quality_file": rejects.quality_written,
        "deleted": counts.deleted,
        "stale": counts.stale,
        "events": counts.events,
    }
    print(json.dumps(summary), flush=True)
    return exit_code


def _legacy_source_name(dsn: str) -> str:
    """The source name earlier versions gave a DSN, which kept a key=value or ?password=."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(dsn)
        password = parts.password
    except ValueError:
        return dsn
    if password:
        netloc = parts.netloc.replace(f":{password}@", "@")
        return urlunsplit(parts._replace(netloc=netloc))
    return dsn


def _adopt_checkpoint_named_with_a_password(legacy: Path, folder: Path, source: str) -> None:
    """Move a checkpoint kept under a name that held the DSN's password to its new folder.

    Its source.txt held the password: the store rewrites it in the new folder, and a legacy
    folder left beside an existing new one gets the name without the password.
    """
    if legacy == folder or not legacy.is_dir():
        return
    if folder.exists():
        (legacy / "source.txt").write_text(source + "\n", encoding="utf-8")
    else:
        legacy.rename(folder)


def _governance(args: argparse.Namespace) -> Governance:
    from schemas.agencies import (
        AgencyRegistryError,
        InvalidAgencyIdError,
        load_agencies,
        validate_agency_id,
    )

    try:
        validate_agency_id(args.agency)
        agencies = load_agencies()
    except (InvalidAgencyIdError, AgencyRegistryError) as error:
        raise FatalError(str(error)) from None
    agency = agencies.get(args.agency)
    if agency is None:
        raise FatalError(
            f"agency {args.agency!r} is not in the agency registry (known: "
            f"{', '.join(sorted(agencies))}); fix --agency or add it to deploy/agencies.yaml"
        )
    if args.classification and args.classification != agency.classification:
        if not agency.permits_label(args.classification):
            raise FatalError(
                f"--classification {args.classification} is below agency {agency.id!r}'s own"
                f" label {agency.classification}, and the agency registry does not allow"
                f" lowering it; publish at {agency.classification} or higher, or have the"
                f" registry's owner set may_lower_classification: true for {agency.id!r}"
                " (a reviewed change of deploy/agencies.yaml)"
            )
        logging.getLogger("tipsync.produce").warning(
            "classification override: this run labels agency %s's events %s instead of %s%s",
            agency.id, args.classification, agency.classification,
            " (lowered, allowed by the agency registry)"
            if Classification.rank(args.classification) < Classification.rank(
                agency.classification) else "",
        )
    return Governance(
        classification=args.classification or agency.classification,
        legal_basis=args.legal_basis or agency.legal_basis,
        consent_ref=args.consent_ref,
        retention_days=args.retention_days if args.retention_days is not None
        else agency.retention_days,
    )


def _mapping(args: argparse.Namespace, entity: Entity) -> AgencyMapping | None:
    if args.mapping is None:
        return None
    mapping = load_mapping(args.mapping)
    if mapping.agency != args.agency:
        raise FatalError(
            f"mapping file {args.mapping} is for agency {mapping.agency!r}, not {args.agency!r}; "
            "pass the agency's own mapping"
        )
    if mapping.entity is not entity:
        raise FatalError(
            f"mapping file {args.mapping} maps {mapping.entity.value} exports, not "
            f"{entity.value}; pass --entity {mapping.entity.value} or the right mapping"
        )
    return mapping


def _topics(agency_id: str, root: str) -> Callable[[Entity], str]:
    names = TopicNames(root)
    return lambda entity: names.agency(agency_id, entity.value)
