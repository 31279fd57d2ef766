"""The ``tipsync`` command: one entry point for every stage of the pipeline.

Every command's face (its options, help and exit codes) lives in one module of this package,
which exposes ``register(subparsers)``; this file only lists them. What a command does lives in
the runtime package or the ``deploy`` folder it belongs to.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from deploy.cli.options import AGENCY_CREDENTIALS
from deploy.stack.layout import PRIVATE_UMASK
from schemas import config
from schemas.client_config import ClientConfigError

# module path -> it adds one or more subcommands (and sets ``func`` on its parsers)
COMMAND_MODULES: tuple[str, ...] = (
    "deploy.cli.stack",
    "deploy.cli.agency",
    "deploy.cli.contract",
    "deploy.cli.demo",
    "deploy.cli.run",
    "deploy.cli.generate",
    "deploy.cli.operations",
    "deploy.cli.produce",
    "deploy.cli.stream",
    "deploy.cli.model",
    "deploy.cli.sink",
    "deploy.cli.analyst",
    "deploy.cli.audit",
    "deploy.cli.erase",
    "deploy.cli.dlq",
    "deploy.cli.review",
    "deploy.cli.subscribe",
    "deploy.cli.console",
    "deploy.cli.bench",
    "deploy.cli.deploy",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tipsync",
        description="tipsync: one shared, reconciled, real-time view of the task force's data.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Checkpoints, logs, table stores, Kafka segments: whatever tipsync and the processes it
    # starts (Kafka, the registry, PostgreSQL, workers, sink) create is the user's only.
    os.umask(PRIVATE_UMASK)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        principal = getattr(args, "principal", config.DEFAULT_PRINCIPAL)
        if principal == AGENCY_CREDENTIALS:
            config.use_local_principal(args.agency, agency=True)
        else:
            config.use_local_principal(principal)
        if getattr(args, "client_config", None) is not None:
            config.use_client_config(args.client_config)
        if hasattr(args, "client_config"):
            config.load_settings()  # a bad client properties file stops here, named
        return int(args.func(args) or 0)
    except ClientConfigError as error:
        print(f"tipsync: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

