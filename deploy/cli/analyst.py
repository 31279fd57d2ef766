"""``tipsync analyst add|list|remove``: analysts as people, each a login with a clearance."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from schemas import config
from schemas.config import load_settings

ADMIN_URL_HELP = (
    "libpq URI of a role with CREATEROLE and rights on reconciled.analyst_clearance, its"
    " password in a passfile (default: tipsync_admin of the local stack, with its pgpass, on"
    " the --database-url's server and database)"
)
DATABASE_URL_HELP = f"the store the analyst reads (default: {config.DATABASE_URL})"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from deploy.operations.analysts import CLEARANCES

    analyst = subparsers.add_parser(
        "analyst", help="analysts' logins and clearances in the reconciled store"
    )
    commands = analyst.add_subparsers(dest="analyst_command", metavar="ACTION")
    commands.required = True

    add = commands.add_parser(
        "add", help="create an analyst's login with a clearance; write their connection file"
    )
    add.add_argument("name", help="the analyst's login (lower case, e.g. ana_campbell)")
    add.add_argument("--clearance", required=True, choices=CLEARANCES,
                     help="the most protective classification the analyst may see")
    add.add_argument("--agencies", default=None,
                     help="ID,... : only records of these agencies (default: every agency)")
    add.add_argument("--steward", action="store_true",
                     help="may also review and decide pairs (same, different, split), in the"
                          " console and with `tipsync review --connection FILE`, within the"
                          " same clearance (docs/CONSOLE.md, docs/ANALYSTS.md)")
    add.add_argument("--out", required=True, type=Path,
                     help="connection URI file to write (mode 0600); its password goes to"
                          " FILE.pgpass beside it (0600)")
    add.set_defaults(func=_add)

    listing = commands.add_parser("list", help="analysts, their clearance and agencies")
    listing.set_defaults(func=_list)

    remove = commands.add_parser(
        "remove", help="drop an analyst's login (open sessions end, the next connection fails)"
    )
    remove.add_argument("name")
    remove.set_defaults(func=_remove)

    for command in (add, listing, remove):
        command.add_argument("--database-url", help=DATABASE_URL_HELP)
        command.add_argument("--admin-url", help=ADMIN_URL_HELP)


def _connections(args: argparse.Namespace) -> tuple[str, str]:
    from deploy.operations.analysts import admin_conninfo, refuse_password_in

    settings = load_settings()
    database_url = args.database_url or settings.database_url
    admin = args.admin_url or admin_conninfo(database_url, settings.pgpass_file)
    refuse_password_in(admin, "--admin-url")
    return database_url, admin


def _add(args: argparse.Namespace) -> int:
    from deploy.operations.analysts import AnalystError, add_analyst, parse_agencies

    try:
        agencies = parse_agencies(args.agencies)
        database_url, admin = _connections(args)
        files = add_analyst(admin, database_url, args.name, args.clearance, agencies, args.out,
                            steward=args.steward)
    except AnalystError as error:
        print(f"tipsync analyst add: {error}", file=sys.stderr)
        return 2
    scope = ", ".join(agencies) if agencies else "every agency"
    role = ", steward" if args.steward else ""
    print(f"analyst {args.name} added: clearance {args.clearance}, {scope}{role}")
    print(f"connection file {files.uri_file} (password in {files.passfile}); hand both to"
          f" {args.name} privately, e.g. psql \"$(cat {files.uri_file.name})\"")
    return 0


def _list(args: argparse.Namespace) -> int:
    from deploy.operations.analysts import AnalystError, list_analysts

    try:
        _, admin = _connections(args)
        analysts = list_analysts(admin)
    except AnalystError as error:
        print(f"tipsync analyst list: {error}", file=sys.stderr)
        return 2
    if not analysts:
        print("no analysts")
        return 0
    header = ("name", "clearance", "agencies", "login", "steward", "granted")
    rows = [
        (a.name, a.clearance or "none (sees nothing)",
         ",".join(a.agencies) if a.agencies is not None else "all",
         "yes" if a.can_login else "no", "yes" if a.steward else "no",
         a.granted_at.isoformat(timespec="seconds") if a.granted_at else "")
        for a in analysts
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())
    return 0


def _remove(args: argparse.Namespace) -> int:
    from deploy.operations.analysts import AnalystError, remove_analyst

    try:
        _, admin = _connections(args)
        removed = remove_analyst(admin, args.name)
    except AnalystError as error:
        print(f"tipsync analyst remove: {error}", file=sys.stderr)
        return 2
    if not removed:
        print(f"tipsync analyst remove: no analyst {args.name}", file=sys.stderr)
        return 1
    print(f"analyst {args.name} removed: the login is gone and their sessions ended")
    return 0
