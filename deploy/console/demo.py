"""The console at the end of ``make demo``: a demo analyst (a steward with the
VICTIM_PROTECTED clearance, so the synthetic data is seen whole) and the console running in
the background on its default port.

The analyst's password goes into ``<home>/demo/console/<name>.password`` (mode 0600), never to
the terminal; its connection file and passfile sit beside it (``tipsync analyst add``'s
files). The console's pid is in ``<home>/run/console.pid``, its output in
``<home>/logs/console.log``; a second demo finds it running and leaves it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from deploy.cli.console import DEFAULT_PORT
from deploy.operations.analysts import (
    add_analyst,
    admin_conninfo,
    list_analysts,
    write_private,
)
from deploy.stack.layout import CONSOLE_SERVICE, StateLayout
from deploy.stack.processes import port_is_free, process_mentions, read_pid, start_background
from schemas import config
from schemas.config import Settings

DEMO_ANALYST = "demo_steward"
DEMO_CLEARANCE = "VICTIM_PROTECTED"
SERVICE = CONSOLE_SERVICE


@dataclass(frozen=True)
class DemoConsole:
    url: str
    analyst: str
    password_file: Path
    started: bool  # False: it was running already


def demo_analyst(settings: Settings) -> tuple[str, Path]:
    """The demo analyst's login and password file, made the first time."""
    folder = settings.home / "demo" / SERVICE
    folder.mkdir(parents=True, exist_ok=True)
    password_file = folder / f"{DEMO_ANALYST}.password"
    admin = admin_conninfo(settings.database_url, settings.pgpass_file)
    known = {analyst.name for analyst in list_analysts(admin)}
    if DEMO_ANALYST in known and password_file.is_file():
        return DEMO_ANALYST, password_file
    uri_file = folder / f"{DEMO_ANALYST}.uri"
    for stale in (uri_file, uri_file.with_name(uri_file.name + ".pgpass"), password_file):
        stale.unlink(missing_ok=True)
    if DEMO_ANALYST in known:  # a login whose password file was lost: make it anew
        from deploy.operations.analysts import remove_analyst

        remove_analyst(admin, DEMO_ANALYST)
    files = add_analyst(admin, settings.database_url, DEMO_ANALYST, DEMO_CLEARANCE, None,
                        uri_file, steward=True)
    password = files.passfile.read_text("utf-8").strip().rsplit(":", 1)[1]
    write_private(password_file, password + "\n")
    return DEMO_ANALYST, password_file


def demo_steward_connection(settings: Settings) -> tuple[str, Path]:
    """The demo steward's login and connection file (``tipsync analyst add --out``'s file),
    which ``tipsync review --connection`` reads as; made the first time."""
    analyst, password_file = demo_analyst(settings)
    return analyst, password_file.with_name(f"{analyst}.uri")


def start_demo_console(settings: Settings, port: int = DEFAULT_PORT) -> DemoConsole:
    """The demo analyst, and the console running in the background (started if need be)."""
    analyst, password_file = demo_analyst(settings)
    layout = StateLayout(settings.home, settings.cache)
    url = f"https://{config.LOOPBACK}:{port}/"
    pid = read_pid(layout.pidfile(SERVICE))
    if pid is not None and process_mentions(pid, "console"):
        return DemoConsole(url, analyst, password_file, started=False)
    if not port_is_free(port):
        raise RuntimeError(f"port {port} is taken by another program; stop it, or run"
                           f" `tipsync console --port N` yourself")
    start_background([sys.executable, "-m", "deploy.cli", SERVICE, "--port", str(port)],
                     log=layout.log(SERVICE), pidfile=layout.pidfile(SERVICE),
                     cwd=config.project_root())
    return DemoConsole(url, analyst, password_file, started=True)
