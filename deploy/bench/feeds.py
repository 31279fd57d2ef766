"""``tipsync bench feeds``: how soon an agency hears what concerns it, end to end.

On the local stack, under a topic prefix of its own (``StreamHarness``): agency A
(``police-ctu``) publishes ``--people`` distinct synthetic people; one stream worker and A's
``tipsync subscribe`` (a real process, into a scratch database) run. Then, one at a time:

1. **alert latency**: agency B (``immigration``) publishes a record of one of A's people;
   the figure is the time from just before B's publish to the moment A's row of the
   ``RECORD_REPORTED`` alert is stored (its ``received_at``, the subscriber's transaction);
2. **decision-to-visible latency**: a steward publishes a cannot-link between A's and B's
   record of the person (``tipsync review decide --different``); the figure is the time to
   A's row of the ``GOLDEN_CHANGED`` message whose holders no longer name B's record, from
   the start of the command's work (``decision_to_visible``: it creates the topic if need be,
   looks the schema up, starts a producer) and from Kafka's acknowledgement of the decision
   (``decision_acknowledged_to_visible``).

Prints the figures (median, 95th percentile, max) and a JSON line of them last. The helpers
here (synthetic people, the subscriber process, reading A's table) serve
tests/integration/test_feeds.py too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row

from deploy.bench.scratch import scratch_database
from deploy.bench.stream_harness import ROOT, StreamHarness
from deploy.stewardship.review import publish_decision
from schemas import config
from schemas.config import Settings, load_settings
from schemas.examples import example_event
from schemas.stewardship import steward_decision

HOLDER, REPORTER = "police-ctu", "immigration"
_LETTERS = "bcdfghjklmnprstvz"
_VOWELS = "aeiou"


def invented_name(seed: str, syllables: int = 4) -> str:
    """A pronounceable name nobody has, the same for the same seed."""
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(_LETTERS[digest[2 * i] % len(_LETTERS)] + _VOWELS[digest[2 * i + 1] % 5]
                   for i in range(syllables)).capitalize()


def person_event(agency: str, record: str, person: int, version: int = 1,
                 classification: str = "SENSITIVE", **payload: Any) -> dict[str, Any]:
    """Agency ``agency``'s record of synthetic person number ``person``: every agency's record
    of the same number resolves to one golden person (same names, date of birth, TRN), and
    different numbers never match."""
    event = example_event("person", agency, record, source_version=version,
                          classification=classification,
                          event_id=str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                  f"feeds:{agency}:{record}:{version}")),
                          event_time=datetime.now(UTC), produced_at=datetime.now(UTC))
    event["payload"].update(
        given_name=invented_name(f"given:{person}", 2),
        middle_name=None,
        family_name=invented_name(f"family:{person}"),
        aliases=[],
        date_of_birth=(date(1950, 1, 1) + timedelta(days=97 * person)).isoformat(),
        dob_precision="DAY",
        identifiers=[{"scheme": "TRN", "value": f"{700_000_000 + person}",
                      "issuing_country": "JM"}],
        phones=[f"+1876{7_000_000 + person}"],
        emails=[],
        addresses=[],
    )
    event["payload"].update(payload)
    return event


def database_uri(database_url: str, name: str) -> str:
    """The libpq URI of database ``name`` on the server of ``database_url``."""
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def agency_database(settings: Settings, purpose: str) -> Iterator[str]:
    """A scratch database standing for an agency's own, as a libpq URI."""
    with scratch_database(settings.database_url, purpose) as conninfo:
        name = psycopg.conninfo.conninfo_to_dict(conninfo)["dbname"]
        yield database_uri(settings.database_url, str(name))


def start_subscriber(harness: StreamHarness, agency: str, to: str,
                     *extra: str) -> subprocess.Popen[bytes]:
    """``tipsync subscribe --agency AGENCY --to TO`` as a process of its own."""
    harness.logs.mkdir(parents=True, exist_ok=True)
    log = open(harness.logs / f"{harness.prefix}-subscribe-{agency}.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "subscribe", "--agency", agency, "--to", to,
         "--topic-root", harness.prefix, *extra],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, config.HOME: str(harness.settings.home)},
    )


def feed_rows(uri: str, kind: str | None = None) -> list[dict[str, Any]]:
    """The agency's stored feed messages, oldest offset first ([] before the table exists)."""
    with psycopg.connect(uri, row_factory=dict_row) as connection:
        exists = connection.execute(
            "SELECT to_regclass('tipsync_feed.message') IS NOT NULL AS present").fetchone()
        if not exists or not exists["present"]:
            return []
        rows = connection.execute(
            'SELECT * FROM tipsync_feed.message ORDER BY partition, "offset"').fetchall()
    return [row for row in rows if kind is None or row["kind"] == kind]


def _wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise TimeoutError(f"{what} did not arrive within {timeout:g} s")


def _alert_for(uri: str, reporter_key: str) -> Any:
    def find() -> Any:
        for row in feed_rows(uri, "RECORD_REPORTED"):
            by = row["message"].get("reported_by") or {}
            if f"{by.get('agency_id')}:{by.get('source_record_id')}" == reporter_key:
                return row
        return None
    return find


def _separated(uri: str, holder_record: str, reporter_key: str, after: datetime) -> Any:
    def find() -> Any:
        for row in feed_rows(uri, "GOLDEN_CHANGED"):
            message = row["message"]
            if (holder_record in message["your_records"] and row["produced_at"] > after
                    and all(f"{h['agency_id']}:{h['source_record_id']}" != reporter_key
                            for h in message["holders"])):
                return row
        return None
    return find


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"n": len(ordered), "median_ms": round(statistics.median(ordered) * 1000, 1),
            "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1)}


def bench_feeds(settings: Settings, people: int, decisions: int) -> dict[str, Any]:
    harness = StreamHarness(settings, agencies=(HOLDER, REPORTER), entities=("person",),
                            partitions=1).setup()
    subscriber = None
    try:
        with agency_database(settings, "feeds_bench") as uri:
            for person in range(people):
                harness.publish("person", person_event(HOLDER, f"P-{person}", person))
            harness.flush()
            harness.start_worker()
            subscriber = start_subscriber(harness, HOLDER, uri)
            _wait(lambda: len(feed_rows(uri, "GOLDEN_CHANGED")) >= people, 180,
                  f"{HOLDER}'s {people} people in its feed")
            alerts: list[float] = []
            for person in range(people):
                started = datetime.now(UTC)
                harness.publish("person", person_event(REPORTER, f"I-{person}", person))
                harness.flush()
                row = _wait(_alert_for(uri, f"{REPORTER}:I-{person}"), 60,
                            f"the alert about {REPORTER}:I-{person}")
                alerts.append((row["received_at"] - started).total_seconds())
            decided: list[float] = []
            after_publish: list[float] = []
            for person in range(min(decisions, people)):
                started = datetime.now(UTC)
                publish_decision(settings, harness.topics, steward_decision(
                    f"{HOLDER}:P-{person}", f"{REPORTER}:I-{person}", "CANNOT_LINK",
                    "Bench Steward", "bench"))
                published = datetime.now(UTC)
                row = _wait(_separated(uri, f"P-{person}", f"{REPORTER}:I-{person}", started),
                            60, f"the separation of person {person}")
                decided.append((row["received_at"] - started).total_seconds())
                after_publish.append((row["received_at"] - published).total_seconds())
            return {"people": people, "alert_latency": _summary(alerts),
                    "decision_to_visible": _summary(decided),
                    "decision_acknowledged_to_visible": _summary(after_publish)}
    finally:
        if subscriber is not None and subscriber.poll() is None:
            subscriber.terminate()
            subscriber.wait(timeout=30)
        harness.teardown()


def register_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--people", type=int, default=50,
                        help=f"{HOLDER}'s people; {REPORTER} reports each once (alerts)")
    parser.add_argument("--decisions", type=int, default=10,
                        help="cannot-link decisions timed to the agency's row")


def run(args: argparse.Namespace) -> int:
    load = os.getloadavg()
    figures = bench_feeds(load_settings(), args.people, args.decisions)
    figures["load_average_before"] = [round(value, 2) for value in load]
    figures["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    for name in ("alert_latency", "decision_to_visible", "decision_acknowledged_to_visible"):
        summary = figures[name]
        print(f"{name}: n={summary['n']} median {summary['median_ms']} ms, p95 "
              f"{summary['p95_ms']} ms, max {summary['max_ms']} ms")
    print(f"load average before {figures['load_average_before']}, after "
          f"{figures['load_average_after']}")
    print(json.dumps(figures), flush=True)
    return 0
