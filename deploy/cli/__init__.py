"""The ``tipsync`` command: one entry point for every stage of the pipeline.

Every command's face (its options, help and exit codes) lives in one module of this package,
which exposes ``register(subparsers)``; this file only lists them, with the commands each one
adds (``COMMAND_MODULES``: a start imports the module of its command only; a unit test checks
the table against what the modules register). What a command does lives in the runtime
package or the ``deploy`` folder it belongs to.
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

# module path -> the subcommands it adds (each sets ``func`` on its parsers), in the order
# of ``tipsync --help``
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "deploy.cli.stack": ("stack",),
    "deploy.cli.agency": ("agency",),
    "deploy.cli.contract": ("schemas", "topics"),
    "deploy.cli.demo": ("demo",),
    "deploy.cli.run": ("run",),
    "deploy.cli.generate": ("generate",),
    "deploy.cli.operations": ("lag", "freshness", "monitor"),
    "deploy.cli.produce": ("produce",),
    "deploy.cli.stream": ("stream",),
    "deploy.cli.model": ("model",),
    "deploy.cli.sink": ("db", "sink", "search"),
    "deploy.cli.analyst": ("analyst",),
    "deploy.cli.audit": ("audit",),
    "deploy.cli.erase": ("erase", "retention"),
    "deploy.cli.dlq": ("dlq",),
    "deploy.cli.review": ("review",),
    "deploy.cli.subscribe": ("subscribe",),
    "deploy.cli.console": ("console",),
    "deploy.cli.bench": ("bench",),
    "deploy.cli.deploy": ("deploy",),
}


def command_modules(argv: Sequence[str]) -> list[str]:
    """The modules to register for ``argv``: the command's own when it names one, else all
    (to list them in the help or an error). A command's module imports what the command
    runs, and all of them together cost a second of CPU at every start (faust, aiohttp,
    the benchmarks...): an agency's ``tipsync produce`` or an operator's ``tipsync lag``
    does not pay for the others."""
    command = argv[0] if argv else None
    for module_name, commands in COMMAND_MODULES.items():
        if command in commands:
            return [module_name]
    return list(COMMAND_MODULES)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of ``argv``'s command (of every command without ``argv``)."""
    parser = argparse.ArgumentParser(
        prog="tipsync",
        description="tipsync: one shared, reconciled, real-time view of the task force's data.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in (list(COMMAND_MODULES) if argv is None else command_modules(argv)):
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Checkpoints, logs, table stores, Kafka segments: whatever tipsync and the processes it
    # starts (Kafka, the registry, PostgreSQL, workers, sink) create is the user's only.
    os.umask(PRIVATE_UMASK)
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(arguments)
    args = parser.parse_args(arguments)
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

