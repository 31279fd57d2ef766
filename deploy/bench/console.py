"""``tipsync bench console``: page response times of the console on the data in the store.

Signs in to a running console as an analyst (the password read from a file, never an
argument), then times GET /search?q=NAME and GET /person/ID, each a full HTTPS round trip as
a browser makes it (TLS verified against the stack's CA, one connection kept alive), on names
and people sampled from the store; prints p50, p99 and max per page and the load average.
Names and ids are sampled with the store's URL (the operator's), never printed.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import ssl
import time
from pathlib import Path

import httpx
import psycopg

from deploy.cli.console import DEFAULT_PORT
from deploy.console.demo import DEMO_ANALYST
from deploy.console.security import CSRF_FIELD, LOGIN_COOKIE
from deploy.operations.drive import percentile
from deploy.stack.layout import StateLayout
from deploy.stack.tls import tls_files
from schemas import config
from schemas.config import Settings, load_settings

TOKEN = re.compile(rf'name="{CSRF_FIELD}" value="([^"]+)"')


def register_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=f"https://{config.LOOPBACK}:{DEFAULT_PORT}",
                        help=f"the running console (default https://{config.LOOPBACK}:"
                        f"{DEFAULT_PORT}, as make demo starts it)")
    parser.add_argument("--analyst", default=DEMO_ANALYST,
                        help=f"the analyst to sign in as (default {DEMO_ANALYST})")
    parser.add_argument("--password-file", type=Path, default=None, metavar="FILE",
                        help="a file whose first line is the password (default: the demo"
                        " analyst's, <home>/demo/console/<analyst>.password)")
    parser.add_argument("--requests", type=int, default=200,
                        help="requests per page (default 200)")
    parser.add_argument("--seed", type=int, default=17)


def _samples(settings: Settings, count: int, seed: int) -> tuple[list[str], list[str]]:
    with psycopg.connect(settings.database_url, connect_timeout=10) as connection:
        rows = connection.execute(
            "SELECT person_id::text, family_name FROM reconciled.person"
            " WHERE family_name IS NOT NULL").fetchall()
    if not rows:
        raise SystemExit("tipsync bench console: the store holds no person; run make demo")
    chosen = random.Random(seed).choices(rows, k=count)
    return [row[1] for row in chosen], [row[0] for row in chosen]


def sign_in(client: httpx.Client, analyst: str, password: str) -> None:
    form = client.get("/login")
    match = TOKEN.search(form.text)
    if form.status_code != 200 or match is None or LOGIN_COOKIE not in client.cookies:
        raise SystemExit(f"tipsync bench console: {client.base_url}/login gave no login form"
                         f" ({form.status_code})")
    answer = client.post("/login", data={CSRF_FIELD: match.group(1), "username": analyst,
                                         "password": password})
    if answer.status_code != 303:
        raise SystemExit(f"tipsync bench console: signing in as {analyst} was refused"
                         f" ({answer.status_code}); check --analyst and --password-file")


def _timed(client: httpx.Client, paths: list[str]) -> list[float]:
    timings = []
    for path in paths:
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"tipsync bench console: GET {path.split('?')[0]} answered"
                             f" {response.status_code}")
    return timings


def run_bench(args: argparse.Namespace) -> int:
    settings = load_settings()
    password_file = args.password_file or (
        settings.home / "demo" / "console" / f"{args.analyst}.password")
    password = password_file.read_text("utf-8").splitlines()[0]
    names, people = _samples(settings, args.requests, args.seed)
    ca = tls_files(StateLayout(settings.home, settings.cache).secrets).ca
    verify = ssl.create_default_context(cafile=str(ca))
    with httpx.Client(base_url=args.url, verify=verify, timeout=60,
                      follow_redirects=False) as client:
        sign_in(client, args.analyst, password)
        _timed(client, ["/search?q=warm", f"/person/{people[0]}"])  # first use: not counted
        load_before = os.getloadavg()
        pages = {"search": _timed(client, [f"/search?q={name}" for name in names]),
                 "person": _timed(client, [f"/person/{person}" for person in people])}
        load_after = os.getloadavg()
    print(f"console pages at {args.url}, signed in as {args.analyst}, {args.requests}"
          f" requests per page, one client, sequential:")
    for page, timings in pages.items():
        print(f"  {page:<7} p50 {percentile(timings, 50):7.1f} ms   p99"
              f" {percentile(timings, 99):7.1f} ms   max {max(timings):7.1f} ms")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}"
          f" ({os.cpu_count()} cores)")
    return 0
