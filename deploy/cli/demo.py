"""``tipsync demo``: the whole pipeline on synthetic data (what ``make demo`` runs)."""

from __future__ import annotations

import argparse

from deploy.cli.options import add_client_config
from deploy.demo.run import DEMO_PEOPLE, DEMO_SEED, run_demo


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = subparsers.add_parser(
        "demo", help="run the whole pipeline on synthetic data from a dozen agencies"
    )
    demo.add_argument("--people", type=int, default=DEMO_PEOPLE,
                      help=f"true people in the synthetic task force (default {DEMO_PEOPLE})")
    demo.add_argument("--seed", type=int, default=DEMO_SEED, help="generator seed")
    demo.add_argument("--live-seconds", type=float, default=60.0,
                      help="how long to play live changes (default 60; 0 skips)")
    add_client_config(demo)
    demo.set_defaults(func=run_demo)
