"""Options several commands share, defined once."""

from __future__ import annotations

import argparse
from pathlib import Path

from schemas import config
from schemas.topics import ROOT


def add_topic_root(parser: argparse.ArgumentParser) -> None:
    """``--topic-root``: replaces ``tip`` in every topic and consumer-group name
    (``schemas.topics.TopicNames``), so a test or staging run never shares a topic."""
    parser.add_argument(
        "--topic-root", default=ROOT, metavar="ROOT",
        help=f"replaces '{ROOT}' in every topic and consumer-group name (tests, staging and "
        f"benchmarks use their own; default {ROOT})",
    )


# ``principal`` of a command whose local credentials are its agency's (``--agency``).
AGENCY_CREDENTIALS = "agency"


def use_principal(parser: argparse.ArgumentParser, principal: str) -> None:
    """The principal whose local client properties file the command uses when neither
    ``--client-config`` nor the variable names one (``schemas.config.use_local_principal``;
    ``AGENCY_CREDENTIALS``: the file of the agency given with ``--agency``). Commands that
    set none use ``admin``'s."""
    parser.set_defaults(principal=principal)


def add_client_config(parser: argparse.ArgumentParser) -> None:
    """``--client-config``: the Kafka client properties file (``schemas.client_config``) of
    every command that talks to Kafka or the registry; it wins over the variable, and the
    processes the command starts get the file's path (never its secrets) in the variable."""
    parser.add_argument(
        "--client-config", type=Path, default=None, metavar="FILE",
        help="Kafka client properties file: bootstrap.servers, security.protocol, sasl.*,"
        f" ssl.ca.location, schema.registry.* (default {config.CLIENT_CONFIG}; without"
        " either, the local stack's file of the command's principal; docs/SECURITY.md)",
    )
