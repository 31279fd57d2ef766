"""Options several commands share, defined once."""

from __future__ import annotations

import argparse

from schemas.topics import ROOT


def add_topic_root(parser: argparse.ArgumentParser) -> None:
    """``--topic-root``: replaces ``tip`` in every topic and consumer-group name
    (``schemas.topics.TopicNames``), so a test or staging run never shares a topic."""
    parser.add_argument(
        "--topic-root", default=ROOT, metavar="ROOT",
        help=f"replaces '{ROOT}' in every topic and consumer-group name (tests, staging and "
        f"benchmarks use their own; default {ROOT})",
    )
