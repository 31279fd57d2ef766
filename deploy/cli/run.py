"""``tipsync run``: the stream processors and the sink together in the foreground."""

from __future__ import annotations

import argparse

from deploy.cli.options import add_client_config
from deploy.operations.supervisor import run_pipeline


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = subparsers.add_parser(
        "run",
        help="run the stream processors and the sink together in the foreground "
             "(one machine; Ctrl-C stops both cleanly)",
    )
    add_client_config(run)
    run.set_defaults(func=run_pipeline)
