"""Every read audited, on the real PostgreSQL with pgaudit: analysts of two clearances read
through search_person, a view and a table, and ``tipsync audit`` reports each read with the
right analyst, person and path, from the store's audit table and the server's log.

A throwaway database holds an OFFICIAL and a VICTIM_PROTECTED person linked to a case,
written as the sink writes them; analysts are made with ``tipsync analyst add`` and read
through the connection file it wrote.
"""

from __future__ import annotations

import json
import stat
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from deploy.bench.scratch import scratch_database
from deploy.cli import main
from deploy.operations.analysts import admin_conninfo, read_connection_file, remove_analyst
from deploy.stack.layout import StateLayout
from schemas.config import Settings
from sinks import store
from sinks.migrate import migrate
from sinks.records import golden_rows
from sinks.tables import CASE, LINK, PERSON
from tests.integration.test_need_to_know import _other, _person

RUN = uuid.uuid4().hex[:8]
POLICE, SHELTER = "police-ctu", "safe-haven-shelter"
TRN = "987654321"


@dataclass(frozen=True)
class Store:
    url: str
    admin: str
    official: str
    protected: str
    family_name: str


@pytest.fixture(scope="module")
def reconciled(stack: Settings) -> Iterator[Store]:
    with scratch_database(stack.database_url, "test_audit") as url:
        migrate(url)
        official, protected, case_id = (str(uuid.uuid4()) for _ in range(3))
        people = {
            official: _person(2, "Odessa", "OFFICIAL", [(POLICE, f"AUD-1-{RUN}")]),
            protected: _person(2, "Verity", "VICTIM_PROTECTED",
                               [(POLICE, f"AUD-2-{RUN}"), (SHELTER, f"AUD-3-{RUN}")],
                               identifiers=[{"scheme": "TRN", "value": TRN,
                                             "issuing_country": "JM"}]),
        }
        with psycopg.connect(url, autocommit=True) as owner:
            store.prepare_session(owner, [PERSON, CASE, LINK])
            with owner.transaction():
                store.write_entity(owner, PERSON, [golden_rows(PERSON, person_id, record)
                                                   for person_id, record in people.items()])
                store.write_entity(owner, CASE, [golden_rows(
                    CASE, case_id, _other("case", "OFFICIAL", POLICE, case_ref=f"AUD-{RUN}"))])
                store.write_entity(owner, LINK, [
                    golden_rows(LINK, str(uuid.uuid4()), _other(
                        "link", "OFFICIAL", POLICE, from_entity="PERSON", from_id=person_id,
                        to_entity="CASE", to_id=case_id, link_role="VICTIM"))
                    for person_id in people
                ])
        family_name = str(people[official]["family_name"])
        yield Store(url, admin_conninfo(url, stack.pgpass_file), official, protected,
                    family_name)


@dataclass(frozen=True)
class Login:
    name: str
    uri_file: Path

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(read_connection_file(self.uri_file), autocommit=True)


@pytest.fixture(scope="module")
def analysts(reconciled: Store, tmp_path_factory: pytest.TempPathFactory,
             ) -> Iterator[dict[str, Login]]:
    """Clearance -> the analyst's login and the connection file `analyst add` wrote."""
    folder = tmp_path_factory.mktemp("audit_analysts")
    made: dict[str, Login] = {}
    try:
        for clearance in ("OFFICIAL", "VICTIM_PROTECTED"):
            name = f"test_audit_{RUN}_{clearance.lower()}"
            uri_file = folder / f"{name}.uri"
            assert main(["analyst", "add", name, "--clearance", clearance, "--out",
                         str(uri_file), "--database-url", reconciled.url]) == 0
            made[clearance] = Login(name, uri_file)
        yield made
    finally:
        for login in made.values():
            remove_analyst(reconciled.admin, login.name)


@pytest.fixture(scope="module")
def reads(reconciled: Store, analysts: dict[str, Login]) -> dict[str, str]:
    """Each analyst searches, reads a view and a table; the VICTIM_PROTECTED one also
    reads a view in a transaction it rolls back. Returns clearance -> login name."""
    for clearance in ("OFFICIAL", "VICTIM_PROTECTED"):
        # The analyst's command: `tipsync search person --connection FILE`.
        assert main(["search", "person", reconciled.family_name,
                     "--connection", str(analysts[clearance].uri_file)]) == 0
        with analysts[clearance].connect() as connection:
            connection.execute(
                "SELECT person_id, cases FROM reconciled.person_overview WHERE person_id = %s",
                (reconciled.official,)).fetchall()
            connection.execute("SELECT given_name FROM reconciled.person").fetchall()
    with (analysts["VICTIM_PROTECTED"].connect() as connection,
          pytest.raises(_Rollback), connection.transaction()):
        connection.execute("SELECT * FROM reconciled.case_people").fetchall()
        raise _Rollback
    return {clearance: login.name for clearance, login in analysts.items()}


class _Rollback(Exception):
    pass


def audit_json(reconciled: Store, *options: str, capsys: pytest.CaptureFixture[str],
               ) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["audit", "--database-url", reconciled.url, "--json", *options]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def audit_until(reconciled: Store, wanted: set[tuple[str, ...]], *options: str,
                capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The audit once it holds ``wanted`` (analyst, through, person or objects, recorded in):
    the server's logging collector writes the log a few milliseconds after the statement."""
    deadline = time.monotonic() + 15
    while True:
        entries = audit_json(reconciled, *options, capsys=capsys)
        if wanted <= summary(entries) or time.monotonic() > deadline:
            return entries
        time.sleep(0.2)


def summary(entries: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    return {(entry["analyst"], entry["through"], entry["person_id"] or "",
             entry["recorded_in"]) for entry in entries}


def test_every_read_appears_with_its_analyst_person_and_path(
    reconciled: Store, reads: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    official, protected = reads["OFFICIAL"], reads["VICTIM_PROTECTED"]
    person_reads = {
        (official, "search_person()", reconciled.official, "store"),
        (official, "view reconciled.person_overview", reconciled.official, "store"),
        (protected, "search_person()", reconciled.official, "store"),
        (protected, "search_person()", reconciled.protected, "store"),
        (protected, "view reconciled.person_overview", reconciled.official, "store"),
        # Rolled back: gone from the table, still in the server log.
        (protected, "view reconciled.case_people", reconciled.official, "server log only"),
        (protected, "view reconciled.case_people", reconciled.protected, "server log only"),
    }
    statement_reads = {
        (analyst, through, "", "server log")
        for analyst in (official, protected)
        for through in ("table reconciled.person", "view reconciled.person_overview")
    }
    entries = audit_until(reconciled, person_reads | statement_reads, capsys=capsys)
    found = summary(entries)
    assert person_reads | statement_reads <= found
    # The OFFICIAL analyst never got the protected person, so no read of it is recorded.
    assert not {entry for entry in found
                if entry[0] == official and entry[2] == reconciled.protected}
    # The view's statement names the tables read on its behalf too.
    for entry in entries:
        if entry["through"] == "view reconciled.person_overview" and not entry["person_id"]:
            assert {"reconciled.person", "reconciled.link", 'reconciled."case"'} <= set(
                entry["objects"])
    # pgaudit counts the rows: the table read returned one person to OFFICIAL, two to the other.
    table_rows = {entry["analyst"]: entry["rows"] for entry in entries
                  if entry["through"] == "table reconciled.person"
                  and entry["analyst"] in (official, protected)}
    assert table_rows == {official: 1, protected: 2}


def test_the_audit_filters_by_analyst_person_and_time(
    reconciled: Store, reads: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    official, protected = reads["OFFICIAL"], reads["VICTIM_PROTECTED"]
    audit_until(reconciled, {(official, "search_person()", reconciled.official, "store")},
                capsys=capsys)
    mine = audit_json(reconciled, "--analyst", official, capsys=capsys)
    assert mine and {entry["analyst"] for entry in mine} == {official}
    about = audit_json(reconciled, "--person", reconciled.protected, capsys=capsys)
    assert {(entry["analyst"], entry["person_id"]) for entry in about} == {
        (protected, reconciled.protected)}
    assert audit_json(reconciled, "--since", "2999-01-01", capsys=capsys) == []
    capsys.readouterr()
    assert main(["audit", "--database-url", reconciled.url, "--analyst", official]) == 0
    table = capsys.readouterr().out
    assert "search_person()" in table and reconciled.official in table


def test_no_personal_value_appears_in_the_audit(
    reconciled: Store, reads: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    audit_until(reconciled, {(reads["OFFICIAL"], "search_person()", reconciled.official,
                              "store")}, capsys=capsys)
    capsys.readouterr()
    assert main(["audit", "--database-url", reconciled.url, "--json"]) == 0
    as_json = capsys.readouterr().out
    assert main(["audit", "--database-url", reconciled.url]) == 0
    as_table = capsys.readouterr().out
    for output in (as_json, as_table):
        # Names (and the search term, which was the family name), identifier values.
        for value in ("Odessa", "Verity", reconciled.family_name, TRN):
            assert value not in output


def test_analysts_can_neither_read_nor_change_the_audit(
    analysts: dict[str, Login], reads: dict[str, str],
) -> None:
    with analysts["VICTIM_PROTECTED"].connect() as connection:
        for statement in ("SELECT count(*) FROM reconciled.read_audit",
                          "UPDATE reconciled.read_audit SET analyst = 'someone_else'",
                          "DELETE FROM reconciled.read_audit",
                          "TRUNCATE reconciled.read_audit",
                          "INSERT INTO reconciled.read_audit (read_at, analyst, backend_pid,"
                          " path, person_id) VALUES (now(), 'x', 1, 'search_person',"
                          " gen_random_uuid())"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)
        # pgaudit's settings are the superuser's: an analyst cannot switch their audit off.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("SET pgaudit.role = ''")
        assert connection.execute("SHOW pgaudit.role").fetchone() == ("tipsync_auditor",)


def test_the_audit_table_is_append_only_for_its_owner_too(reconciled: Store,
                                                          reads: dict[str, str]) -> None:
    with psycopg.connect(reconciled.url, autocommit=True) as owner:
        row = owner.execute("SELECT count(*) FROM reconciled.read_audit").fetchone()
        assert row is not None and row[0] > 0
        for statement in ("UPDATE reconciled.read_audit SET analyst = 'someone_else'",
                          "DELETE FROM reconciled.read_audit",
                          "TRUNCATE reconciled.read_audit"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                owner.execute(statement)


def test_the_server_log_is_the_server_users_alone(stack: Settings) -> None:
    folder = StateLayout.of(stack).postgres_data / "log"
    files = list(folder.glob("*.json"))
    assert files
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_analyst_made_without_the_audit_is_named_on_every_report(
    reconciled: Store, reads: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    name = f"test_audit_{RUN}_by_hand"
    with psycopg.connect(reconciled.admin, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {name} LOGIN IN ROLE tipsync_analyst")
        try:
            capsys.readouterr()
            assert main(["audit", "--database-url", reconciled.url, "--since",
                         "2999-01-01"]) == 0
            warnings = capsys.readouterr().err
        finally:
            admin.execute(f"DROP ROLE {name}")
    assert f"analyst {name}'s statements are not recorded" in warnings
    assert reads["OFFICIAL"] not in warnings
