"""``tipsync audit``: who read which person, when, through what (for the data protection
officer; run as the store's administrator, never by analysts)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC
from pathlib import Path

from deploy.cli.analyst import ADMIN_URL_HELP, DATABASE_URL_HELP


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    audit = subparsers.add_parser(
        "audit",
        help="the analysts' read audit: who read which person, when, through what",
        description=(
            "Reports the analysts' reads from both records of the read audit: the persons"
            " search_person and the person views returned (reconciled.read_audit, and the"
            " server log for reads rolled back), and every statement that read a table or"
            " view (pgaudit, in the server log). Run as the store's administrator."
        ),
    )
    audit.add_argument("--analyst", help="only this analyst's reads (their login)")
    audit.add_argument("--person", metavar="ID",
                       help="only reads that returned this golden person id (person reads"
                            " only: a statement read names objects, not persons)")
    audit.add_argument("--since", metavar="T",
                       help="only reads at or after T (2026-12-01 or 2026-12-01T08:00Z; UTC"
                            " unless an offset is given)")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    audit.add_argument("--server-log", type=Path, metavar="DIR",
                       help="the folder of the server's jsonlog files (default: the local"
                            " stack's postgres/data/log)")
    audit.add_argument("--database-url", help=DATABASE_URL_HELP)
    audit.add_argument("--admin-url", help=ADMIN_URL_HELP)
    audit.set_defaults(func=_audit)


def _audit(args: argparse.Namespace) -> int:
    from psycopg.conninfo import conninfo_to_dict

    from deploy.cli.analyst import _connections
    from deploy.operations.analysts import AnalystError
    from deploy.operations.audit import (
        AUDITOR_ROLE,
        AuditError,
        Filters,
        parse_since,
        read_audit,
        unaudited_analysts,
    )
    from deploy.stack.layout import StateLayout
    from schemas.config import load_settings

    try:
        database_url, admin = _connections(args)
        filters = Filters(
            analyst=args.analyst, person_id=args.person,
            since=parse_since(args.since) if args.since else None,
            database=str(conninfo_to_dict(database_url).get("dbname") or "") or None,
        )
        server_log = args.server_log or StateLayout.of(load_settings()).postgres_data / "log"
        entries = read_audit(admin, server_log, filters)
        unaudited = unaudited_analysts(admin)
    except (AuditError, AnalystError) as error:
        print(f"tipsync audit: {error}", file=sys.stderr)
        return 2
    for name in unaudited:
        # Nothing silent: a login whose statements pgaudit skips is named on every report.
        print(f"tipsync audit: warning: analyst {name}'s statements are not recorded by"
              f" pgaudit (made by hand or before the read audit); as a superuser run ALTER"
              f" ROLE {name} SET pgaudit.role = '{AUDITOR_ROLE}'", file=sys.stderr)
    if args.json:
        for entry in entries:
            print(json.dumps(entry.as_json(), sort_keys=True))
        return 0
    if not entries:
        print("no reads recorded" + (" that match" if any(
            (args.analyst, args.person, args.since)) else ""))
        return 0
    header = ("at (UTC)", "analyst", "through", "person", "objects", "rows", "recorded in")
    rows = [
        (entry.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], entry.analyst,
         entry.through, entry.person_id or "", ", ".join(entry.objects),
         "" if entry.rows is None else str(entry.rows), entry.recorded_in)
        for entry in entries
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())
    return 0
