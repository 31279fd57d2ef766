"""``tipsync console``: the task force's web console (what it serves: ``deploy.console``).

    tipsync console [--host 127.0.0.1] [--port 18090] [--database-url URL]
                    [--idle-minutes 15] [--hours 8]

Serves HTTPS only, with the local stack's server certificate (``secrets/tls/``, names
localhost, 127.0.0.1 and ::1) unless --certificate and --key name others. Exit codes: 0
stopped; 2 bad arguments or no certificate.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from deploy.cli.options import add_topic_root
from schemas import config

DEFAULT_PORT = 18090


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    console = subparsers.add_parser(
        "console",
        help="the web console for analysts, stewards and operators (HTTPS)",
        description=(
            "A web application over the reconciled store: search people, a golden person"
            " with lineage, links and why linked; the review queue for stewards; agency data"
            " quality; pipeline status. Analysts sign in with their own PostgreSQL login"
            " (tipsync analyst add), and every page runs as that login (docs/CONSOLE.md)."
        ),
    )
    console.add_argument("--host", default=config.LOOPBACK,
                         help=f"address to listen on (default {config.LOOPBACK})")
    console.add_argument("--port", type=int, default=DEFAULT_PORT,
                         help=f"port to listen on (default {DEFAULT_PORT})")
    console.add_argument("--database-url", metavar="URL",
                         help=f"the store: where it is and how to trust it; its user and"
                         f" password are never used (default {config.DATABASE_URL})")
    console.add_argument("--certificate", type=Path, metavar="FILE",
                         help="the server certificate chain, PEM (default: the local stack's)")
    console.add_argument("--key", type=Path, metavar="FILE",
                         help="its private key, PEM (default: the local stack's)")
    console.add_argument("--idle-minutes", type=float, default=15.0, metavar="M",
                         help="a session ends after M minutes without a request (default 15)")
    console.add_argument("--hours", type=float, default=8.0, metavar="H",
                         help="a session ends H hours after sign-in in any case (default 8)")
    console.add_argument("--steward-config", type=Path, metavar="FILE",
                         help="Kafka client properties file stewards' decisions are read and"
                         " written with (default: the local stack's steward file)")
    console.add_argument("--monitor-config", type=Path, metavar="FILE",
                         help="Kafka client properties file the status page reads lag with"
                         " (default: the local stack's monitor file)")
    add_topic_root(console)
    console.set_defaults(func=_console)


def _console(args: argparse.Namespace) -> int:
    import uvicorn

    from deploy.console.app import ConsoleOptions, build_app
    from deploy.console.pages import optional_pages
    from deploy.console.pipeline import Pipeline
    from deploy.console.sessions import SessionStore
    from deploy.stack.layout import StateLayout
    from deploy.stack.tls import tls_files
    from schemas.config import load_settings

    settings = load_settings()
    files = tls_files(StateLayout(settings.home, settings.cache).secrets)
    certificate = args.certificate or files.server_certificate
    key = args.key or files.server_key
    for path, what in ((certificate, "--certificate"), (key, "--key")):
        if not path.is_file():
            print(f"tipsync console: {path} ({what}) does not exist; the console serves HTTPS"
                  " only: start the local stack once (tipsync stack up makes its certificate)"
                  " or give --certificate and --key", file=sys.stderr)
            return 2
    if args.idle_minutes <= 0 or args.hours <= 0:
        print("tipsync console: --idle-minutes and --hours must be positive", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sessions = SessionStore(idle_seconds=args.idle_minutes * 60,
                            lifetime_seconds=args.hours * 3600)
    database_url = args.database_url or settings.database_url
    pipeline = Pipeline.of(settings, args.topic_root, args.steward_config, args.monitor_config)
    options = ConsoleOptions(database_url=database_url, sessions=sessions,
                             extra_pages=optional_pages(pipeline, database_url))
    app = build_app(options)
    print(f"tipsync console: https://{args.host}:{args.port}/ (stop with Ctrl-C)", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, ssl_certfile=str(certificate),
                    ssl_keyfile=str(key), access_log=False, log_level="warning",
                    server_header=False)
    finally:
        sessions.close_all()
    return 0
