"""The demo's last step: an agency's alert, and a steward's decision, each shown as it lands.

1. **An alert.** A police person record whose golden person another agency (A) also holds is
   updated at the police; A's ``tipsync subscribe`` (JSON Lines, in the state folder) receives
   the ``RECORD_REPORTED`` alert, within what A's clearance allows.
2. **A decision.** A steward, on their own login (the demo's ``demo_steward``, its connection
   file from ``tipsync analyst add --steward --out``), reads the queue (``tipsync review
   list --connection FILE``) and separates the two records (``tipsync review decide
   --different``): the store shows them in two golden people, A's feed says its person no
   longer holds the police record; then the steward withdraws the decision and the resolver
   joins them again, so a rerun of the demo starts from the same view. What the steward was
   shown is in the read audit, under their login.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from deploy.demo.world import PHONE_EXCHANGES
from deploy.operations.drive import StepError, checked, say
from schemas.agencies import load_agencies
from schemas.outbound import within_clearance
from schemas.topics import TOPICS

_SHARED = """
select p.source_record_id, o.agency_id, o.source_record_id, p.person_id::text
from reconciled.person_source as p
join reconciled.person_source as o on o.person_id = p.person_id and o.agency_id <> p.agency_id
where p.agency_id = %s and p.source_record_id = any(%s) and not p.deleted and not o.deleted
order by p.source_record_id, o.agency_id, o.source_record_id
"""


class FeedFolder:
    """Reads an agency's JSON Lines feed as it grows (only the lines added since last time)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._read: dict[Path, int] = {}

    def new_messages(self) -> list[dict[str, Any]]:
        messages = []
        for path in sorted(self.folder.glob("feed-*.jsonl")):
            with open(path, "rb") as handle:
                handle.seek(self._read.get(path, 0))
                data = handle.read()
            complete = data[:data.rfind(b"\n") + 1]
            self._read[path] = self._read.get(path, 0) + len(complete)
            messages += [json.loads(line) for line in complete.splitlines() if line]
        return messages

    def wait_quiet(self, quiet_seconds: float = 2.0, timeout: float = 120.0) -> int:
        """Read until nothing new came for ``quiet_seconds``; how many messages were read."""
        read, last, began = 0, time.monotonic(), time.monotonic()
        while time.monotonic() - last < quiet_seconds and time.monotonic() - began < timeout:
            new = len(self.new_messages())
            if new:
                read, last = read + new, time.monotonic()
            time.sleep(0.2)
        return read


def _pick_shared_record(connection: psycopg.Connection[Any], live_agency: str,
                        people: list[dict[str, str]]) -> tuple[dict[str, str], str, str, str]:
    """A police row whose golden person another agency cleared for police's records holds."""
    agencies = load_agencies()
    label = agencies[live_agency].classification
    rows = {row["source_record_id"]: row for row in people}
    for record_id, agency, other_record, person_id in connection.execute(
            _SHARED, (live_agency, list(rows))).fetchall():
        if agency in agencies and within_clearance(label, agencies[agency].clearance):
            return rows[record_id], agency, other_record, person_id
    raise StepError(f"no {live_agency} person record shares a golden person with another "
                    "registered agency; the demo data should always have one")


def _wait(condition: Any, timeout: float = 30.0) -> float | None:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if condition():
            return time.monotonic() - began
        time.sleep(0.1)
    return None


def alert_and_decision(database_url: str, home: Path, live_agency: str,
                       people: list[dict[str, str]], steward: tuple[str, Path]) -> None:
    """``steward``: the demo steward's login name and connection file."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        row, agency, other_record, person_id = _pick_shared_record(
            connection, live_agency, people)
        record_id = row["source_record_id"]
        folder = FeedFolder(home / "demo" / "feeds" / agency)
        say(f"feeds: {agency} subscribes to {TOPICS.outbound(agency)} "
            f"(`tipsync subscribe --agency {agency} --to {folder.folder}`)")
        subscriber = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "subscribe", "--agency", agency, "--to",
             str(folder.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            # the first batch stored writes the checkpoint (the agency holds people: it has one)
            _wait(lambda: (folder.folder / "checkpoint.json").exists(), 60)
            backlog = folder.wait_quiet()
            say(f"  {agency} stored {backlog} earlier message(s) of its feed; now "
                f"{live_agency} updates {record_id}, a person {agency} holds as {other_record}")
            changed, started = datetime.now(UTC), time.monotonic()
            _publish_update(home, live_agency, row, changed)
            alerts: list[dict[str, Any]] = []

            def alerted() -> bool:
                alerts.extend(m for m in folder.new_messages()
                              if m["kind"] == "RECORD_REPORTED"
                              and (m.get("reported_by") or {}).get("source_record_id")
                              == record_id)
                return bool(alerts)

            if _wait(alerted) is None:
                raise StepError(f"{agency} received no alert about {live_agency}:{record_id} "
                                "within 30 s; see stream.log in the state folder's logs")
            alert = alerts[0]
            shown = alert.get("person") or {}
            say(f"  alert at {agency} {time.monotonic() - started:.2f}s after the change "
                f"(producer start-up included): {live_agency} reported "
                f"{record_id}, a record of golden person {alert['person_id']} that {agency} "
                f"holds as {', '.join(alert['your_records'])}; shown within its clearance: "
                f"{shown.get('given_name')} {shown.get('family_name')}, "
                f"{len(alert['holders'])} other holder(s) named (all synthetic)")
            _decide(connection, folder, live_agency, record_id, agency, other_record, steward)
        finally:
            subscriber.terminate()
            _, errors = subscriber.communicate(timeout=30)
            if subscriber.returncode not in (0, -15):
                say(f"  (tipsync subscribe ended with {subscriber.returncode}: "
                    f"{errors.decode(errors='replace').strip()[-500:]})")


def _publish_update(home: Path, live_agency: str, row: dict[str, str],
                    changed: datetime) -> None:
    update = dict(row)
    update["updated_at"] = changed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    update["phone"] = f"876-{PHONE_EXCHANGES[0]}-{changed.microsecond % 9000 + 1000}"
    path = home / "demo" / "live" / "feeds-update.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(update))
        writer.writeheader()
        writer.writerow(update)
    checked("publishing the update", "produce", "--agency", live_agency, "--entity", "person",
            "--file", str(path), "--source-name", "live-person", "--no-progress")


def _decide(connection: psycopg.Connection[Any], folder: FeedFolder, live_agency: str,
            record_id: str, agency: str, other_record: str, steward: tuple[str, Path]) -> None:
    police, other = f"{live_agency}:{record_id}", f"{agency}:{other_record}"
    name, login = steward
    queue = json.loads(checked("the steward's review queue", "review", "list", "--json",
                               "--connection", str(login)))
    say(f"steward {name} reads the review queue as their own login (`tipsync review list"
        f" --connection {login.name}`): {len(queue)} open pair(s) within their clearance")
    split = checked("the steward's split view", "review", "split",
                    _person_of(connection, live_agency, record_id), "--connection", str(login))
    say(f"  `tipsync review split`: {split.splitlines()[0]}")

    def same_person() -> bool:
        found = connection.execute(
            "select count(distinct person_id) from reconciled.person_source where"
            " (agency_id, source_record_id) in ((%s, %s), (%s, %s))",
            (live_agency, record_id, agency, other_record)).fetchone()
        return bool(found and found[0] == 1)

    for option, wanted, what in (("--different", False, "in two golden people"),
                                 ("--withdraw", True, "in one golden person again")):
        started = time.monotonic()
        output = checked(f"a steward's decision ({option})", "review", "decide", option,
                         police, other, "--connection", str(login), "--reason",
                         "demo: a steward corrects the resolver, then takes it back")
        waited = _wait(lambda wanted=wanted: same_person() == wanted)
        if waited is None:
            raise StepError(f"the decision {option} {police} {other} was not visible in "
                            "the store within 30 s; see stream.log and sink.log")
        say(f"steward: {output.strip()}")
        say(f"  visible in PostgreSQL {time.monotonic() - started:.2f}s after the command "
            f"started: {police} and {other} {what}")
        if option == "--different":
            separated = _wait(lambda: any(
                m["kind"] == "GOLDEN_CHANGED" and other_record in m["your_records"]
                and all(f"{h['agency_id']}:{h['source_record_id']}" != police
                        for h in m["holders"])
                for m in folder.new_messages()))
            if separated is not None:
                say(f"  {agency}'s feed: its golden person no longer names {police}")
    audited = connection.execute(
        "select path, count(*) from reconciled.read_audit where analyst = %s"
        " and path like 'review%%' group by path order by path", (name,)).fetchall()
    say(f"  read audit: {name}'s review reads, each person shown recorded: "
        + (", ".join(f"{path} {count}" for path, count in audited) or "none"))


def _person_of(connection: psycopg.Connection[Any], agency: str, record_id: str) -> str:
    row = connection.execute(
        "select person_id::text from reconciled.person_source"
        " where agency_id = %s and source_record_id = %s", (agency, record_id)).fetchone()
    if row is None:
        raise StepError(f"{agency}:{record_id} is not in the store; see sink.log")
    return str(row[0])
