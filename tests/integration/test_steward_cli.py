"""``tipsync review`` as the steward's own login, on the real store and broker.

A throwaway database holds two pairs the resolver could not decide about, written as the
sink writes them: one of OFFICIAL people, one of VICTIM_PROTECTED people. Stewards and an
analyst are made with ``tipsync analyst add`` and the commands run as processes with the
connection files it wrote. Shown: a steward sees only the pairs their clearance covers; an
analyst who is not a steward, and the store's owner, are refused; what a steward was shown is
in the read audit (read with psql, not our code); a decision names the login and is refused
for records beyond the steward's clearance. All people synthetic.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from deploy.bench.scratch import scratch_database
from deploy.bench.stream_harness import ROOT
from deploy.cli import main
from deploy.operations.analysts import admin_conninfo, remove_analyst
from deploy.stewardship.review import read_decisions
from schemas import config
from schemas.config import Settings
from schemas.examples import example_reconciled
from schemas.registration import register_all
from schemas.registry import SchemaRegistry
from schemas.stewardship import pair_id, pair_key
from schemas.topics import TopicNames
from sinks import store
from sinks.migrate import migrate
from sinks.records import golden_rows
from sinks.tables import PERSON, match_decision_row

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
POLICE, SHELTER = "police-ctu", "safe-haven-shelter"
OFFICIAL_PAIR = (f"{POLICE}:OFF-A-{RUN}", f"{POLICE}:OFF-B-{RUN}")
PROTECTED_PAIR = (f"{POLICE}:VP-A-{RUN}", f"{SHELTER}:VP-B-{RUN}")
TOPIC_ROOT = f"test-steward-cli-{RUN}"


@dataclass(frozen=True)
class World:
    url: str  # the owner's
    admin: str
    people: dict[str, str]  # source key -> golden person id
    logins: dict[str, Path]  # who -> connection file


def _person(key: str, classification: str) -> dict[str, Any]:
    agency, record_id = key.split(":", 1)
    record = example_reconciled("person")
    record.update({"golden_version": 2, "given_name": "Marva", "middle_name": None,
                   "family_name": f"Quill{RUN}", "aliases": [],
                   "classification": classification})
    record["sources"] = [{"agency_id": agency, "source_record_id": record_id,
                          "source_version": 2, "event_time": record["last_updated"],
                          "deleted": False, "quality_issues": []}]
    record["lineage"] = [{"field": "given_name", "agency_id": agency,
                          "source_record_id": record_id, "source_version": 2,
                          "event_time": record["last_updated"]}]
    return record


def _review(first: str, second: str) -> dict[str, Any]:
    decision = example_reconciled("match_decision")
    (left_agency, left), (right_agency, right) = (key.split(":", 1) for key in (first, second))
    decision.update(left={"agency_id": left_agency, "source_record_id": left},
                    right={"agency_id": right_agency, "source_record_id": right},
                    decision="REVIEW", score=11.5,
                    features={"family_name": 6.0, "date_of_birth": 2.5, "phone": -1.0})
    return decision


@pytest.fixture(scope="module")
def world(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("steward-logins")
    with SchemaRegistry(stack.client.registry()) as registry:
        registered = register_all(registry)  # idempotent: decide's schema is there after
        assert all(result.ok for result in registered), [r.describe() for r in registered]
    with scratch_database(stack.database_url, "test_steward_cli") as url:
        migrate(url)
        people = {key: str(uuid.uuid4()) for key in (*OFFICIAL_PAIR, *PROTECTED_PAIR)}
        labels = {key: "OFFICIAL" for key in OFFICIAL_PAIR}
        labels.update({key: "VICTIM_PROTECTED" for key in PROTECTED_PAIR})
        with psycopg.connect(url, autocommit=True) as owner:
            store.prepare_session(owner, [PERSON])
            with owner.transaction():
                store.write_entity(owner, PERSON, [
                    golden_rows(PERSON, person_id, _person(key, labels[key]))
                    for key, person_id in people.items()])
                store.write_match_decisions(owner, [
                    match_decision_row(_review(*pair)) for pair in (OFFICIAL_PAIR,
                                                                    PROTECTED_PAIR)])
        admin = admin_conninfo(url, stack.pgpass_file)
        logins: dict[str, Path] = {}
        made: list[str] = []
        try:
            for who, clearance, steward in (("official", "OFFICIAL", ["--steward"]),
                                            ("protected", "VICTIM_PROTECTED", ["--steward"]),
                                            ("analyst", "VICTIM_PROTECTED", [])):
                name = f"steward_cli_{RUN}_{who}"
                out = folder / f"{name}.uri"
                assert main(["analyst", "add", name, "--clearance", clearance, "--out",
                             str(out), "--database-url", url, *steward]) == 0
                made.append(name)
                logins[who] = out
            yield World(url, admin, people, logins)
        finally:
            for name in made:
                remove_analyst(admin, name)


def _review_command(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", "review", *arguments], cwd=ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )


def _listed(world: World, who: str) -> set[tuple[str, str]]:
    listed = _review_command("list", "--json", "--topic-root", TOPIC_ROOT, "--connection",
                             str(world.logins[who]))
    assert listed.returncode == 0, listed.stderr
    return {(pair["a_key"], pair["b_key"]) for pair in json.loads(listed.stdout)}


def _psql_program() -> str:
    return shutil.which("psql") or str(config.postgres_bin() / "psql")


def _psql(conninfo: str, query: str) -> list[list[str]]:
    """Rows of ``query`` through psql itself (not our code), as the store's administrator."""
    result = subprocess.run([_psql_program(), "--no-psqlrc", "-At", "-F", "\t", "-c", query,
                             conninfo],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines() if line]


def test_a_steward_sees_only_the_pairs_their_clearance_covers(world: World) -> None:
    official, protected = tuple(sorted(OFFICIAL_PAIR)), tuple(sorted(PROTECTED_PAIR))
    assert _listed(world, "official") == {official}
    assert _listed(world, "protected") == {official, protected}
    shown = _review_command("show", pair_id(*PROTECTED_PAIR), "--topic-root", TOPIC_ROOT,
                            "--connection", str(world.logins["official"]))
    assert shown.returncode == 1
    assert "no match decision about pair" in shown.stderr
    assert f"Quill{RUN}" not in shown.stdout + shown.stderr


def test_the_owner_and_an_analyst_who_is_not_a_steward_are_refused(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner = _review_command("list", "--topic-root", TOPIC_ROOT, "--database-url", world.url)
    assert owner.returncode == 2
    assert "sees every row of the store" in owner.stderr
    assert "tipsync analyst add NAME --steward --clearance" in owner.stderr
    analyst = _review_command("list", "--topic-root", TOPIC_ROOT, "--connection",
                              str(world.logins["analyst"]))
    assert analyst.returncode == 2
    assert "is not a steward" in analyst.stderr
    assert f"Quill{RUN}" not in owner.stdout + analyst.stdout
    # without a login at all: refused, never the owner's URL by default
    monkeypatch.delenv(config.STEWARD_CONNECTION, raising=False)
    nobody = _review_command("split", world.people[PROTECTED_PAIR[0]])
    assert nobody.returncode == 2
    assert "no login was given" in nobody.stderr


def test_what_a_steward_was_shown_is_in_the_read_audit(world: World) -> None:
    login = world.logins["protected"]
    name = login.stem
    shown = _review_command("show", pair_id(*PROTECTED_PAIR), "--topic-root", TOPIC_ROOT,
                            "--connection", str(login))
    assert shown.returncode == 0, shown.stderr
    assert f"Quill{RUN}" in shown.stdout
    split = _review_command("split", world.people[PROTECTED_PAIR[0]], "--connection",
                            str(login))
    assert split.returncode == 0, split.stderr
    assert PROTECTED_PAIR[0] in split.stdout
    rows = _psql(world.admin, "SELECT analyst, path, person_id FROM reconciled.read_audit"
                              f" WHERE analyst = '{name}' ORDER BY read_id")
    recorded = {(path, person) for analyst, path, person in rows if analyst == name}
    assert {("review_pair", world.people[key]) for key in PROTECTED_PAIR} <= recorded
    assert ("review_split", world.people[PROTECTED_PAIR[0]]) in recorded
    # and the OFFICIAL steward, who was shown no protected person, has no such row
    official = world.logins["official"].stem
    assert _psql(world.admin, "SELECT count(*) FROM reconciled.read_audit WHERE analyst ="
                              f" '{official}' AND person_id IN"
                              f" ('{world.people[PROTECTED_PAIR[0]]}',"
                              f" '{world.people[PROTECTED_PAIR[1]]}')") == [["0"]]


def test_a_decision_names_the_login_and_stays_within_its_clearance(
    world: World, stack: Settings,
) -> None:
    beyond = _review_command("decide", "--different", *PROTECTED_PAIR, "--reason", "not them",
                             "--topic-root", TOPIC_ROOT, "--connection",
                             str(world.logins["official"]))
    assert beyond.returncode == 3, beyond.stderr
    assert "beyond the clearance of" in beyond.stderr
    typed = _review_command("decide", "--same", *OFFICIAL_PAIR, "--steward", "Someone Else",
                            "--topic-root", TOPIC_ROOT, "--connection",
                            str(world.logins["official"]))
    assert typed.returncode == 2 and "--steward is gone" in typed.stderr

    decided = _review_command("decide", "--same", *OFFICIAL_PAIR, "--reason", "one person",
                              "--topic-root", TOPIC_ROOT, "--connection",
                              str(world.logins["official"]))
    assert decided.returncode == 0, decided.stderr
    name = world.logins["official"].stem
    assert f"by {name}" in decided.stdout
    decisions = read_decisions(stack, TopicNames(TOPIC_ROOT))
    assert decisions[pair_key(*OFFICIAL_PAIR)]["steward"] == name
    assert pair_key(*PROTECTED_PAIR) not in decisions
    # the pair is decided, so it leaves the queue
    assert _listed(world, "official") == set()


def test_only_stewards_may_ask_which_records_the_store_holds(world: World) -> None:
    """held_person_sources runs with the owner's rights: an analyst who is not a steward is
    refused by the server itself (psql, as that analyst)."""
    psql = _psql_program()
    uri = world.logins["analyst"].read_text().strip()
    query = f"SELECT reconciled.held_person_sources(ARRAY['{PROTECTED_PAIR[0]}'])"
    refused = subprocess.run([psql, "--no-psqlrc", "-At", "-c", query, uri],
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0
    assert "only stewards may ask which source records the store holds" in refused.stderr
    steward = world.logins["official"].read_text().strip()
    held = subprocess.run([psql, "--no-psqlrc", "-At", "-c", query, steward],
                          capture_output=True, text=True, timeout=60, check=False)
    assert held.returncode == 0, held.stderr
    assert held.stdout.strip() == "{" + PROTECTED_PAIR[0] + "}"
    keys = ", ".join(f"'{key}'" for key in (*PROTECTED_PAIR, *OFFICIAL_PAIR))
    bulk = subprocess.run([psql, "--no-psqlrc", "-At", "-c",
                           f"SELECT reconciled.held_person_sources(ARRAY[{keys}])", steward],
                          capture_output=True, text=True, timeout=60, check=False)
    assert bulk.returncode != 0
    assert "answers about the two records of one decision" in bulk.stderr
