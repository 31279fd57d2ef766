"""Stewards' decisions through the real stack: ``tipsync review decide --different`` separates
two records a stream worker had merged, and they stay apart after the worker restarts (its
rebuild reads the snapshot and the resolve topic, decision included); the review queue's SQL
against a real PostgreSQL. All people synthetic."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from deploy.bench.scratch import scratch_database
from deploy.bench.stream_harness import ROOT, StreamHarness
from deploy.stewardship.review import find_pair, open_pairs
from deploy.stewardship.split import format_split, golden_sources
from schemas import config
from schemas.config import Settings
from schemas.examples import example_event, example_uuid
from schemas.stewardship import pair_id, pair_key
from sinks.migrate import migrate
from tests.integration.steward_login import steward_login

POLICE, IMMIGRATION = "police-ctu:P-1", "immigration:I-1"
# a snapshot before every resolve message: the restart starts from one
SNAPSHOTS = {config.RESOLVE_SNAPSHOT_RECORDS: "1"}


def _person(agency: str, record: str, version: int = 1, **payload: Any) -> dict[str, Any]:
    event = example_event("person", agency, record, source_version=version,
                          event_id=example_uuid(f"steward:{agency}:{record}:{version}"))
    event["payload"].update(payload)
    return event


def _people(harness: StreamHarness) -> dict[str, str | None]:
    mapping = harness.latest(harness.topics.person_mapping)
    return {key: (value or {}).get("person_id") for key, value in mapping.items()}


def _tipsync(harness: StreamHarness, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", *arguments, "--topic-root", harness.prefix],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.fixture(scope="module")
def harness(stack: Settings) -> Iterator[StreamHarness]:
    harness = StreamHarness(stack, entities=("person",)).setup()
    try:
        yield harness
    finally:
        harness.teardown()


def test_a_cannot_link_separates_a_merged_pair_for_good(harness: StreamHarness,
                                                        tmp_path: Path) -> None:
    harness.publish("person", _person("police-ctu", "P-1"))
    harness.publish("person", _person("immigration", "I-1"))
    harness.flush()
    worker = harness.start_worker(environment=SNAPSHOTS)
    harness.wait_for(lambda: len({p for p in _people(harness).values()}) == 1
                     and len(_people(harness)) == 2, timeout=120, what="the merged pair")

    with steward_login(harness.settings, tmp_path) as steward:
        decided = _tipsync(harness, "review", "decide", "--different", IMMIGRATION, POLICE,
                           "--connection", str(steward.connection_file),
                           "--reason", "two sisters")
    assert decided.returncode == 0, decided.stderr
    assert f"by {steward.name}" in decided.stdout
    assert pair_id(POLICE, IMMIGRATION) in decided.stdout
    harness.wait_for(lambda: len(set(_people(harness).values())) == 2, timeout=120,
                     what="the pair separated")
    decisions = harness.latest(harness.topics.reconciled("match_decision"))
    verdicts = [v for v in decisions.values() if v and v["rule"].startswith("steward_")]
    assert verdicts and verdicts[-1]["decision"] == "NON_MATCH"
    forwarded = [m.key for m in harness.read(harness.topics.resolve)]
    assert f"steward:{pair_key(POLICE, IMMIGRATION)}".encode() in forwarded
    harness.wait_for(harness.caught_up, timeout=60, what="the decision committed")
    people_before = harness.latest(harness.topics.reconciled("person"))

    # a restart: the worker rebuilds (snapshot + topic), then resolves an update that still
    # matches the other record as well as before
    harness.stop_worker(worker)
    harness.publish("person", _person("immigration", "I-1", 2, aliases=["Tami F"]))
    harness.flush()
    harness.start_worker(environment=SNAPSHOTS)
    harness.wait_for(harness.caught_up, timeout=120, what="the update after the restart")
    people = _people(harness)
    assert people[POLICE] != people[IMMIGRATION]
    assert "resolve: rebuilt from 2 records" in harness.worker_log()
    # and again, now from a snapshot that holds the decision itself (written at offset 3,
    # before the first update: the decision is offset 2)
    harness.stop_worker(harness.workers[-1])
    harness.publish("person", _person("immigration", "I-1", 3, aliases=["Tami F", "T F"]))
    harness.flush()
    harness.start_worker(environment=SNAPSHOTS)
    harness.wait_for(harness.caught_up, timeout=120, what="the update after the second restart")
    people = _people(harness)
    assert people[POLICE] != people[IMMIGRATION]
    assert "(snapshot at offset 3 plus the topic after it" in harness.worker_log()
    after = harness.latest(harness.topics.reconciled("person"))
    for person_id, value in after.items():  # versions only grow
        if value and people_before.get(person_id):
            assert value["golden_version"] >= people_before[person_id]["golden_version"]


def test_the_review_queue_lists_open_pairs_until_a_steward_decides(stack: Settings) -> None:
    when = datetime(2026, 5, 1, 12, tzinfo=UTC)
    with scratch_database(stack.database_url, "test_review") as url:
        migrate(url)
        with psycopg.connect(url) as connection:
            connection.execute(
                "INSERT INTO reconciled.person_source (agency_id, source_record_id, person_id,"
                " source_version) VALUES ('police-ctu', 'P-1', %s, 1),"
                " ('immigration', 'I-1', %s, 1), ('police-ctu', 'P-2', %s, 1)",
                (example_uuid("a"), example_uuid("b"), example_uuid("c")),
            )
            rows = [  # the pair named in both orders; the latest decision counts
                ("police-ctu", "P-1", "immigration", "I-1", when, 14.5, "REVIEW"),
                ("immigration", "I-1", "police-ctu", "P-1", when.replace(hour=11), 25.0,
                 "MATCH"),
                ("police-ctu", "P-2", "immigration", "I-1", when, 12.5, "REVIEW"),
            ]
            for row in rows:
                connection.execute(
                    "INSERT INTO reconciled.match_decision (left_agency_id,"
                    " left_source_record_id, right_agency_id, right_source_record_id,"
                    " decided_at, score, features, rule, decision)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, 'fellegi-sunter', %s)",
                    (*row[:6], json.dumps({"family_name": 5.5, "phone": -1.0}), row[6]),
                )
            connection.commit()
            queue = open_pairs(connection, {})
            assert [(p.a_key, p.b_key) for p in queue] == [
                (IMMIGRATION, POLICE), (IMMIGRATION, "police-ctu:P-2")]
            assert queue[0].features == {"family_name": 5.5, "phone": -1.0}
            assert queue[0].sides[POLICE]["source_version"] == 1
            assert [p.b_key for p in open_pairs(connection, {}, min_score=13)] == [POLICE]
            assert open_pairs(connection, {}, agency="customs") == []
            decided = {pair_key(POLICE, IMMIGRATION): {"kind": "CANNOT_LINK"}}
            assert [p.b_key for p in open_pairs(connection, decided)] == ["police-ctu:P-2"]
            withdrawn = {pair_key(POLICE, IMMIGRATION): {"kind": "WITHDRAWN"}}
            assert len(open_pairs(connection, withdrawn)) == 2
            found = find_pair(connection, pair_id(POLICE, IMMIGRATION), decided)
            assert found is not None and found.steward == {"kind": "CANNOT_LINK"}
            assert find_pair(connection, pair_key("police-ctu:P-2", IMMIGRATION), {})


def test_review_split_lists_the_sources_of_a_merged_id_and_the_commands_that_separate_them(
    stack: Settings,
) -> None:
    survivor, merged = example_uuid("survivor"), example_uuid("merged-away")
    with scratch_database(stack.database_url, "test_split") as url:
        migrate(url)
        with psycopg.connect(url) as connection:
            connection.execute(
                "INSERT INTO reconciled.golden_record_state (entity, golden_id, golden_version,"
                " state, merged_into) VALUES ('person', %s, 3, 'merged', %s),"
                " ('person', %s, 3, 'live', NULL)", (merged, survivor, survivor))
            connection.execute(
                "INSERT INTO reconciled.person_source (agency_id, source_record_id, person_id,"
                " source_version, deleted) VALUES ('police-ctu', 'P-1', %s, 1, false),"
                " ('immigration', 'I-1', %s, 2, false), ('customs', 'C-1', %s, 1, true),"
                " ('customs', 'C-2', %s, 1, false)",
                (survivor, merged, survivor, example_uuid("someone else")))
            connection.execute(
                "INSERT INTO reconciled.match_decision (left_agency_id, left_source_record_id,"
                " right_agency_id, right_source_record_id, decided_at, score, features, rule,"
                " decision) VALUES ('police-ctu', 'P-1', 'immigration', 'I-1', now(), 14.5,"
                " '{}', 'fellegi-sunter', 'MATCH')")
            connection.commit()
            # the SQL, on the owner's connection (the command runs as a steward's login, under
            # row-level security: tests/integration/test_steward_cli.py)
            shown = format_split(golden_sources(connection, merged))
    assert f"golden person {survivor} (the id {merged} was merged into it): 2 source" in shown
    assert f"{IMMIGRATION} ~ {POLICE}: MATCH score 14.5" in shown
    assert "customs" not in shown  # deleted, or someone else's
    assert (f"tipsync review decide --different {IMMIGRATION} {POLICE}"
            " --reason 'WHY THEY DIFFER'") in shown
