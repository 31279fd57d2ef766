"""Issue 13 item 3 on the real stack: a person whose date of birth is mistyped into no date
(``1943-01-77``) is published without it, resolved, and stored, with its data-quality issue
visible in the store; a row without a record id is still rejected.

``tipsync produce`` (a process, its own TIPSYNC_HOME) -> a ``tipsync stream`` worker (the
harness, topics under a root of its own) -> the sink (in a thread, a throwaway database).
All people here are invented.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from deploy.bench.scratch import scratch_database
from deploy.bench.stream_harness import StreamHarness
from producers.canonical import Entity, columns_of
from schemas.config import Settings
from sinks.consumer import ReconciledSink, SinkOptions
from sinks.migrate import migrate

AGENCY = "police-ctu"
TIMEOUT_SECONDS = 120


def _rows() -> list[dict[str, str]]:
    base = {column: "" for column in columns_of(Entity.PERSON)}
    return [
        {**base, "source_record_id": "Q-1", "given_name": "Odessa", "family_name": "Inventa",
         "date_of_birth": "1943-01-77", "phone": "876-555-0199;12",
         "updated_at": "2024-05-01T10:00:00Z"},
        {**base, "source_record_id": "Q-2", "given_name": "Marlon", "family_name": "Fictiv",
         "date_of_birth": "1950-05-19", "updated_at": "2024-05-01T10:00:00Z"},
        {**base, "source_record_id": "", "given_name": "Nobody", "family_name": "Noid",
         "updated_at": "2024-05-01T10:00:00Z"},
    ]


@pytest.fixture(scope="module")
def run(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("quality-home")
    export = home / "persons.csv"
    with export.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns_of(Entity.PERSON)))
        writer.writeheader()
        writer.writerows(_rows())
    harness = StreamHarness(stack, agencies=(AGENCY,), entities=("person", "case", "link"))
    harness.setup()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "produce", "--agency", AGENCY, "--entity",
             "person", "--file", str(export), "--topic-root", harness.prefix, "--no-progress"],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, "TIPSYNC_HOME": str(home)},
        )
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        harness.start_worker()
        person_topic = harness.topics.reconciled("person")

        def resolved() -> bool:
            sources = {
                source["source_record_id"]
                for value in harness.latest(person_topic).values() if value
                for source in value["sources"]
            }
            return {"Q-1", "Q-2"} <= sources

        harness.wait_for(resolved, timeout=TIMEOUT_SECONDS, what="both golden people")
        with scratch_database(stack.database_url, "test_quality") as database_url:
            migrate(database_url)
            _sink_until(stack, harness, database_url)
            with psycopg.connect(database_url) as connection:
                sources = {
                    row[0]: row[1:] for row in connection.execute(
                        "SELECT s.source_record_id, s.quality_issues, p.date_of_birth,"
                        " p.date_of_birth_text FROM reconciled.person_source AS s"
                        " JOIN reconciled.person AS p USING (person_id)"
                        " WHERE s.agency_id = %s", (AGENCY,),
                    ).fetchall()
                }
                by_agency = connection.execute(
                    "SELECT field, problem, values_flagged, records_flagged, records"
                    " FROM reconciled.data_quality_by_agency"
                    " WHERE agency_id = %s AND entity = 'person' ORDER BY field", (AGENCY,),
                ).fetchall()
        yield {"summary": summary, "home": home, "sources": sources, "by_agency": by_agency,
               "golden": harness.latest(person_topic)}
    finally:
        harness.teardown()


def _sink_until(stack: Settings, harness: StreamHarness, database_url: str) -> None:
    """Run the sink in a thread until both people's source rows are in the store."""
    options = SinkOptions.under(harness.topics, consumer_group=f"{harness.prefix}-sink",
                                batch_seconds=0.3)
    sink = ReconciledSink(stack, options, database_url)
    stop = threading.Event()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            sink.run(stop.is_set)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test thread
            failure.append(error)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT_SECONDS
    try:
        with psycopg.connect(database_url, autocommit=True) as connection:
            while time.monotonic() < deadline and not failure:
                row = connection.execute(
                    "SELECT count(*) FROM reconciled.person_source WHERE agency_id = %s",
                    (AGENCY,),
                ).fetchone()
                if row and row[0] >= 2:
                    return
                time.sleep(0.3)
        raise TimeoutError(f"the sink did not store both people: {failure}")
    finally:
        stop.set()
        thread.join(60)
        if failure:
            raise failure[0]


def test_the_person_with_an_impossible_date_of_birth_is_published_not_rejected(
    run: dict[str, Any],
) -> None:
    summary = run["summary"]
    assert summary["published"] == 2 and summary["rejected"] == 1  # the row without an id
    assert summary["flagged"] == 2  # Q-1's date of birth and one of its two phones
    quality = [json.loads(line) for line in Path(summary["quality_file"]).read_text().splitlines()]
    assert {(line["source_record_id"], line["field"], line["problem"]) for line in quality} == {
        ("Q-1", "date_of_birth", "impossible_date"), ("Q-1", "phone", "not_e164"),
    }
    assert all("1943" not in json.dumps(line) for line in quality)  # never the value
    rejects = Path(summary["rejects_file"]).read_text()
    assert "source_record_id is empty" in rejects and "Q-1" not in rejects


def test_it_reaches_the_golden_record_with_its_issues_and_its_date_text(
    run: dict[str, Any],
) -> None:
    (golden,) = [
        value for value in run["golden"].values()
        if value and any(s["source_record_id"] == "Q-1" for s in value["sources"])
    ]
    assert golden["date_of_birth"] is None and golden["date_of_birth_text"] == "1943-01-77"
    assert golden["phones"] == ["+18765550199"]
    (source,) = [s for s in golden["sources"] if s["source_record_id"] == "Q-1"]
    assert source["quality_issues"] == [
        {"field": "date_of_birth", "problem": "impossible_date"},
        {"field": "phone", "problem": "not_e164"},
    ]


def test_its_issue_is_visible_in_the_store(run: dict[str, Any]) -> None:
    issues, date_of_birth, date_text = run["sources"]["Q-1"]
    assert issues == [{"field": "date_of_birth", "problem": "impossible_date"},
                      {"field": "phone", "problem": "not_e164"}]
    assert date_of_birth is None and date_text == "1943-01-77"
    assert run["sources"]["Q-2"][0] == []
    assert run["by_agency"] == [
        ("date_of_birth", "impossible_date", 1, 1, 2), ("phone", "not_e164", 1, 1, 2),
    ]
