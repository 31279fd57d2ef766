"""The ``tipsync`` command: one entry point for every stage of the pipeline.

Each stage owns its subcommands in its own module, which exposes ``register(subparsers)``;
this file only lists them, so changing one stage never means reading the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# module path -> it adds one or more subcommands (and sets ``func`` on its parsers)
COMMAND_MODULES: tuple[str, ...] = (
    "deploy.stack.commands",
    "schemas.commands",
    "deploy.run_demo",
    "deploy.bench_e2e",
    "deploy.pipeline",
    "deploy.demo.commands",
    "deploy.operations.commands",
    "producers.commands",
    "deploy.bench_er_pipeline",
    "streams.stream_commands",
    "streams.model_commands",
    "sinks.commands",
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
