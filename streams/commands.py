"""``tipsync bench er``: entity resolution quality on FEBRL, side by side with Splink."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from producers.commands import bench_subparsers
    from streams import bench_er

    parser = bench_subparsers(subparsers).add_parser(
        "er",
        help="entity resolution quality (precision, recall, F1, blocking recall) on the "
        "FEBRL sets, against Splink",
    )
    bench_er.register_arguments(parser)
    parser.set_defaults(func=bench_er.run)
