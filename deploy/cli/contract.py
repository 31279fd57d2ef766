"""CLI of the contract: ``tipsync schemas register|check|export``, ``tipsync topics create``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from deploy.cli.options import add_client_config
from schemas import config
from schemas.config import load_settings


def register(subparsers: Any) -> None:
    schemas = subparsers.add_parser("schemas", help="the Avro contract in the schema registry")
    schema_commands = schemas.add_subparsers(dest="schemas_command", metavar="ACTION")
    schema_commands.required = True
    for action, func, text in (
        ("register", _register, "register every governed schema (FULL_TRANSITIVE)"),
        ("check", _check, "is each local schema registered or compatible? (exit 1 when not)"),
    ):
        command = schema_commands.add_parser(action, help=text)
        command.add_argument(
            "--subject-prefix",
            default="",
            help="prefix every subject (a scratch copy of the contract, e.g. for tests)",
        )
        add_client_config(command)
        command.set_defaults(func=func)
    schema_commands.add_parser(
        "export", help="write schemas/avsc/*.avsc from the pydantic models"
    ).set_defaults(func=_export)

    topics = subparsers.add_parser("topics", help="Kafka topics of tipsync")
    topic_commands = topics.add_subparsers(dest="topics_command", metavar="ACTION")
    topic_commands.required = True
    create = topic_commands.add_parser(
        "create", help="create agency, reconciled and dead-letter topics (existing ones are kept)"
    )
    create.add_argument(
        "--agencies",
        help=f"agency registry file (default: {config.AGENCIES} or deploy/agencies.yaml)",
    )
    create.add_argument("--dry-run", action="store_true", help="print the plan, create nothing")
    create.add_argument(
        "--update-config", action="store_true",
        help="also set the planned configuration on topics that exist (e.g. agency and"
        " dead-letter topics of an earlier release become compact,delete for erasure)",
    )
    add_client_config(create)
    create.set_defaults(func=_topics_create)



def _registry() -> Any:
    from schemas.serde import SchemaRegistry

    return SchemaRegistry(load_settings().client.registry())


def _local_schemas(prefix: str) -> list[Any]:
    from schemas.registration import LocalSchema, local_schemas

    return [
        LocalSchema(schema.name, prefix + schema.subject, schema.text) for schema in local_schemas()
    ]


def _register(args: argparse.Namespace) -> int:
    from schemas.registration import register_all

    with _registry() as registry:
        results = register_all(registry, _local_schemas(args.subject_prefix))
    for result in results:
        print(result.describe())
    return 0 if all(result.ok for result in results) else 1


def _check(args: argparse.Namespace) -> int:
    from schemas.registration import check_all

    with _registry() as registry:
        results = check_all(registry, _local_schemas(args.subject_prefix))
    for result in results:
        print(result.describe())
    failed = [result for result in results if not result.ok]
    if failed:
        print(f"{len(failed)} schema(s) would be refused; see the reasons above", file=sys.stderr)
        return 1
    return 0


def _export(_: argparse.Namespace) -> int:
    from schemas.catalogue import export_avsc

    changed = export_avsc()
    for path in changed:
        print(f"wrote {path}")
    if not changed:
        print("schemas/avsc is up to date with the models")
    return 0


def _topics_create(args: argparse.Namespace) -> int:
    from schemas.agencies import load_agencies
    from schemas.topics import TopicSettings, create_topics, topic_plan, update_topic_configs

    plan = topic_plan(load_agencies(args.agencies), TopicSettings.from_environment())
    if args.dry_run:
        for spec in plan:
            settings = ", ".join(f"{key}={value}" for key, value in spec.config.items())
            print(f"{spec.name}  partitions={spec.partitions}  {settings}")
        return 0
    bootstrap = load_settings().client
    outcome = create_topics(bootstrap, plan)
    created = sorted(name for name, state in outcome.items() if state == "created")
    for name in created:
        print(f"created {name}")
    print(f"{len(created)} topic(s) created, {len(outcome) - len(created)} already existed")
    if args.update_config:
        updated = update_topic_configs(
            bootstrap, [spec for spec in plan if spec.name not in created])
        print(f"{len(updated)} existing topic(s) given the planned configuration")
    return 0
