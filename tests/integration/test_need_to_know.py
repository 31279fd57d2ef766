"""Need to know on the real PostgreSQL: analysts with a clearance, forced row-level security.

A throwaway database holds people of each classification, a case linking them, their source
records, match decisions, merges and a data-quality issue, written as the sink writes them
(``sinks.store`` as the owner). Analysts are made with ``tipsync analyst add`` and every read
goes through the connection file it wrote, with psycopg, as an analyst would connect. Their
roles are cluster-wide: each has a unique name and is removed at the end.
"""

from __future__ import annotations

import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from deploy.bench.scratch import scratch_database
from deploy.cli import main
from deploy.operations.analysts import (
    admin_conninfo,
    list_analysts,
    read_connection_file,
    remove_analyst,
)
from schemas.config import Settings
from schemas.examples import example_reconciled
from sinks import store
from sinks.migrate import migrate, shipped_migrations
from sinks.records import golden_rows
from sinks.tables import CASE, LINK, PERSON, match_decision_row

RUN = uuid.uuid4().hex[:8]
POLICE, IMMIGRATION, SHELTER = "police-ctu", "immigration", "safe-haven-shelter"


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Store:
    url: str
    admin: str
    official: str  # person ids
    sensitive: str
    protected: str
    merged_official: str  # merged into official
    merged_protected: str  # merged into protected
    case: str
    links: dict[str, str]  # person id -> link id of its link to the case
    sources: dict[str, list[tuple[str, str]]]  # person id -> (agency, record id)


def _person(version: int, given: str, classification: str,
            sources: list[tuple[str, str]], **fields: Any) -> dict[str, Any]:
    record = example_reconciled("person")
    record.update({"golden_version": version, "given_name": given, "middle_name": None,
                   "family_name": f"Quandt{RUN}", "aliases": [],
                   "classification": classification, **fields})
    record["sources"] = [
        {"agency_id": agency, "source_record_id": record_id, "source_version": version,
         "event_time": record["last_updated"], "deleted": False, "quality_issues": []}
        for agency, record_id in sources
    ]
    return record


def _other(entity: str, classification: str, agency: str, **fields: Any) -> dict[str, Any]:
    record = example_reconciled(entity)
    record.update({"golden_version": 1, "classification": classification, **fields})
    record["sources"] = [{"agency_id": agency, "source_record_id": f"{entity}-{new_id()[:8]}",
                          "source_version": 1, "event_time": record["sources"][0]["event_time"],
                          "deleted": False, "quality_issues": []}]
    return record


@pytest.fixture(scope="module")
def reconciled(stack: Settings) -> Iterator[Store]:
    with scratch_database(stack.database_url, "test_n2k") as url:
        migrate(url)
        official, sensitive, protected = new_id(), new_id(), new_id()
        merged_official, merged_protected, case_id = new_id(), new_id(), new_id()
        sources = {
            official: [(POLICE, f"OFF-1-{RUN}"), (POLICE, f"OFF-2-{RUN}")],
            sensitive: [(POLICE, f"SEN-1-{RUN}"), (IMMIGRATION, f"SEN-2-{RUN}")],
            protected: [(POLICE, f"VP-1-{RUN}"), (SHELTER, f"VP-2-{RUN}")],
        }
        people = {
            official: _person(3, "Olive", "OFFICIAL", sources[official]),
            sensitive: _person(3, "Sasha", "SENSITIVE", sources[sensitive]),
            protected: _person(3, "Violet", "VICTIM_PROTECTED", sources[protected],
                               phones=["+18765550199"],
                               identifiers=[{"scheme": "TRN", "value": "123456789",
                                             "issuing_country": "JM"}]),
        }
        # The shelter's record of the protected person had an invalid date of birth.
        people[protected]["sources"][1]["quality_issues"] = [
            {"field": "date_of_birth", "problem": "impossible_date"}]
        # Every link is OFFICIAL (police's own): the person end decides what an analyst sees.
        links = {person_id: new_id() for person_id in (official, sensitive, protected)}
        with psycopg.connect(url, autocommit=True) as owner:
            store.prepare_session(owner, [PERSON, CASE, LINK])
            with owner.transaction():
                store.write_entity(owner, PERSON, [
                    golden_rows(PERSON, person_id, record) for person_id, record in people.items()
                ])
                store.write_entity(owner, PERSON, [
                    golden_rows(PERSON, merged_official,
                                {"golden_version": 4, "merged_into": official}),
                    golden_rows(PERSON, merged_protected,
                                {"golden_version": 4, "merged_into": protected}),
                ])
                store.write_entity(owner, CASE, [golden_rows(
                    CASE, case_id, _other("case", "OFFICIAL", POLICE,
                                          case_ref=f"CTU-{RUN}"))])
                store.write_entity(owner, LINK, [
                    golden_rows(LINK, link_id, _other(
                        "link", "OFFICIAL", POLICE, link_id=link_id, from_entity="PERSON",
                        from_id=person_id, to_entity="CASE", to_id=case_id,
                        link_role="VICTIM"))
                    for person_id, link_id in links.items()
                ])
                decisions = []
                for person_id in (official, sensitive, protected):
                    (left_agency, left), (right_agency, right) = sources[person_id]
                    decision = example_reconciled("match_decision")
                    decision.update(left={"agency_id": left_agency, "source_record_id": left},
                                    right={"agency_id": right_agency, "source_record_id": right})
                    decisions.append(match_decision_row(decision))
                store.write_match_decisions(owner, decisions)
        yield Store(url, admin_conninfo(url, stack.pgpass_file), official, sensitive, protected,
                    merged_official, merged_protected, case_id, links, sources)


@dataclass(frozen=True)
class AnalystLogin:
    name: str
    clearance: str
    uri_file: Path

    def connect(self) -> psycopg.Connection:
        # The user path: the URI from the file `analyst add` wrote, password via its passfile.
        return psycopg.connect(read_connection_file(self.uri_file), autocommit=True)


@pytest.fixture(scope="module")
def analysts(reconciled: Store, tmp_path_factory: pytest.TempPathFactory,
             ) -> Iterator[dict[str, AnalystLogin]]:
    folder = tmp_path_factory.mktemp("analysts")
    made: dict[str, AnalystLogin] = {}
    wanted = {"OFFICIAL": ("OFFICIAL", None), "SENSITIVE": ("SENSITIVE", None),
              "VICTIM_PROTECTED": ("VICTIM_PROTECTED", None),
              "POLICE_ONLY": ("VICTIM_PROTECTED", POLICE)}
    try:
        for key, (clearance, agencies) in wanted.items():
            name = f"test_analyst_{RUN}_{key.lower()}"
            out = folder / f"{name}.uri"
            argv = ["analyst", "add", name, "--clearance", clearance, "--out", str(out),
                    "--database-url", reconciled.url]
            if agencies:
                argv += ["--agencies", agencies]
            assert main(argv) == 0
            made[key] = AnalystLogin(name, clearance, out)
        yield made
    finally:
        for login in made.values():
            remove_analyst(reconciled.admin, login.name)


def ids(connection: psycopg.Connection, query: str, *params: Any) -> set[str]:
    return {str(row[0]) for row in connection.execute(query, params).fetchall()}


def expected_people(reconciled: Store, key: str) -> set[str]:
    return {
        "OFFICIAL": {reconciled.official},
        "SENSITIVE": {reconciled.official, reconciled.sensitive},
        "VICTIM_PROTECTED": {reconciled.official, reconciled.sensitive, reconciled.protected},
        "POLICE_ONLY": {reconciled.official},  # the others are known to other agencies too
    }[key]


ANALYSTS = ("OFFICIAL", "SENSITIVE", "VICTIM_PROTECTED", "POLICE_ONLY")


@pytest.mark.parametrize("key", ANALYSTS)
def test_each_analyst_sees_exactly_what_the_clearance_allows(
    reconciled: Store, analysts: dict[str, AnalystLogin], key: str,
) -> None:
    people = expected_people(reconciled, key)
    records = {record for person_id in people for _, record in reconciled.sources[person_id]}
    links = {reconciled.links[person_id] for person_id in people}
    with analysts[key].connect() as connection:
        assert ids(connection, "SELECT person_id FROM reconciled.person") == people
        assert connection.execute("SELECT count(*) FROM reconciled.person").fetchone() == (
            len(people),)
        assert ids(connection, "SELECT source_record_id FROM reconciled.person_source") == records
        assert ids(connection, "SELECT person_id FROM reconciled.person_overview") == people
        assert ids(connection, "SELECT person_id FROM reconciled.case_people") == people
        assert ids(connection, "SELECT DISTINCT person_id FROM reconciled.person_lineage"
                   ) <= people
        assert ids(connection, "SELECT link_id FROM reconciled.link") == links
        assert ids(connection, "SELECT link_id FROM reconciled.link_source") == links
        assert ids(connection, "SELECT case_id FROM reconciled.\"case\"") == {reconciled.case}
        assert ids(connection, "SELECT case_id FROM reconciled.case_source") == {reconciled.case}
        assert ids(connection, "SELECT left_source_record_id FROM reconciled.match_decision"
                   ) == {reconciled.sources[person_id][0][1] for person_id in people}
        merged = {reconciled.official: reconciled.merged_official,
                  reconciled.protected: reconciled.merged_protected}
        visible_merges = {merged[p] for p in people if p in merged}
        assert ids(connection, "SELECT merged_id FROM reconciled.person_merge") == visible_merges
        assert ids(connection, "SELECT golden_id FROM reconciled.golden_record_state"
                   ) == people | visible_merges
        matches = ids(connection, "SELECT person_id FROM reconciled.search_person(%s)",
                      f"Quandt{RUN}")
        assert matches == people
        issues = ids(connection, "SELECT source_record_id FROM reconciled.data_quality_issue")
        by_agency = ids(connection, "SELECT agency_id FROM reconciled.data_quality_by_agency")
        if reconciled.protected in people and key != "POLICE_ONLY":
            assert issues == {reconciled.sources[reconciled.protected][1][1]}
            assert by_agency == {SHELTER}
        else:
            assert issues == set() and by_agency == set()


def test_a_victim_protected_person_is_invisible_to_an_official_analyst(
    reconciled: Store, analysts: dict[str, AnalystLogin],
) -> None:
    protected = reconciled.protected
    with analysts["OFFICIAL"].connect() as connection:
        def count(query: str, *params: Any) -> int:
            row = connection.execute(query, params).fetchone()
            assert row is not None
            return int(row[0])

        assert count("SELECT count(*) FROM reconciled.person WHERE person_id = %s",
                     protected) == 0
        assert count("SELECT count(*) FROM reconciled.person_source WHERE person_id = %s"
                     " OR agency_id = %s", protected, SHELTER) == 0
        # The police's OFFICIAL link to the case names the person: the link is hidden too.
        assert count("SELECT count(*) FROM reconciled.link WHERE from_id = %s OR to_id = %s",
                     protected, protected) == 0
        assert count("SELECT count(*) FROM reconciled.\"case\" AS c"
                     " JOIN reconciled.link AS l ON l.to_id = c.case_id"
                     " LEFT JOIN reconciled.person AS p ON p.person_id = l.from_id"
                     " WHERE p.person_id IS NULL") == 0
        assert count("SELECT count(*) FROM reconciled.case_people WHERE case_id = %s",
                     reconciled.case) == 1
        overview = connection.execute(
            "SELECT cases FROM reconciled.person_overview WHERE person_id = %s",
            (reconciled.official,)).fetchone()
        assert overview is not None and len(overview[0]) == 1
        assert count("SELECT count(*) FROM reconciled.match_decision"
                     " WHERE left_agency_id = %s OR right_agency_id = %s", SHELTER, SHELTER) == 0
        assert count("SELECT count(*) FROM reconciled.golden_record_state"
                     " WHERE golden_id = %s OR merged_into = %s", protected, protected) == 0
        # A merged id of the protected person does not resolve for them.
        row = connection.execute("SELECT reconciled.resolve_person_id(%s)",
                                 (reconciled.merged_protected,)).fetchone()
        assert row is not None and str(row[0]) == reconciled.merged_protected
        assert count("SELECT count(*) FROM reconciled.person WHERE phones @> %s",
                     ["+18765550199"]) == 0


def test_the_cli_search_runs_as_the_analyst(
    reconciled: Store, analysts: dict[str, AnalystLogin], capsys: pytest.CaptureFixture[str],
) -> None:
    for key in ("OFFICIAL", "VICTIM_PROTECTED"):
        capsys.readouterr()
        assert main(["search", "person", f"Quandt{RUN}",
                     "--connection", str(analysts[key].uri_file)]) == 0
        shown = capsys.readouterr().out
        for person_id in (reconciled.official, reconciled.sensitive, reconciled.protected):
            assert (person_id in shown) == (person_id in expected_people(reconciled, key))


def test_an_analyst_cannot_read_others_clearance_write_or_become_the_owner(
    reconciled: Store, analysts: dict[str, AnalystLogin],
) -> None:
    login = analysts["VICTIM_PROTECTED"]
    with login.connect() as connection:
        assert connection.execute(
            "SELECT role_name, clearance FROM reconciled.my_clearance").fetchall() == [
            (login.name, "VICTIM_PROTECTED")]
        for statement in (
            "SELECT * FROM reconciled.analyst_clearance",
            "UPDATE reconciled.analyst_clearance SET clearance = 'VICTIM_PROTECTED'",
            f"INSERT INTO reconciled.analyst_clearance VALUES ('{login.name}x', 'OFFICIAL')",
            "UPDATE reconciled.person SET given_name = 'x'",
            "DELETE FROM reconciled.person_source",
            "INSERT INTO reconciled.match_decision (left_agency_id) VALUES ('x')",
            "SELECT * FROM reconciled.sink_offsets",
            "CREATE TABLE reconciled.analyst_scratch (id int)",
            "SET ROLE tipsync",
            "SET ROLE tipsync_admin",
            "ALTER ROLE CURRENT_USER BYPASSRLS",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)
        # The group itself has no clearance: becoming it shows nothing at all.
        connection.execute("SET ROLE tipsync_analyst")
        assert connection.execute("SELECT count(*) FROM reconciled.person").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM reconciled.my_clearance"
                                  ).fetchone() == (0,)


def test_the_connection_files_hold_no_password_and_are_private(
    analysts: dict[str, AnalystLogin],
) -> None:
    login = analysts["OFFICIAL"]
    passfile = login.uri_file.with_name(login.uri_file.name + ".pgpass")
    for path in (login.uri_file, passfile):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = passfile.read_text().strip().rsplit(":", 1)[1]
    uri = login.uri_file.read_text()
    assert password not in uri
    params = conninfo_to_dict(uri.strip())
    assert "password" not in params
    assert params["user"] == login.name and params["passfile"] == str(passfile)


def test_the_sink_still_writes_every_classification(
    reconciled: Store, analysts: dict[str, AnalystLogin],
) -> None:
    person_id = new_id()
    with psycopg.connect(reconciled.url, autocommit=True) as owner:
        store.prepare_session(owner, [PERSON])
        with owner.transaction():
            store.write_entity(owner, PERSON, [golden_rows(PERSON, person_id, _person(
                1, "Late", "VICTIM_PROTECTED", [(SHELTER, f"LATE-{RUN}")]))])
        assert owner.execute("SELECT classification FROM reconciled.person"
                             " WHERE person_id = %s", (person_id,)).fetchone() == (
            "VICTIM_PROTECTED",)
        with owner.transaction():
            store.write_entity(owner, PERSON, [golden_rows(PERSON, person_id, None)])
    with analysts["OFFICIAL"].connect() as connection:
        assert connection.execute("SELECT count(*) FROM reconciled.person WHERE person_id = %s",
                                  (person_id,)).fetchone() == (0,)


def test_every_table_and_view_an_analyst_can_read_is_guarded(reconciled: Store) -> None:
    """A table an analyst can read has forced row-level security; a view runs with the
    analyst's rights (only my_clearance, one's own row, is the owner's on purpose)."""
    with psycopg.connect(reconciled.url) as owner:
        rows = owner.execute(
            """
            SELECT c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity,
                   coalesce('security_invoker=true' = ANY (c.reloptions), false)
            FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
            WHERE n.nspname = 'reconciled' AND c.relkind IN ('r', 'p', 'v', 'm')
              AND has_any_column_privilege('tipsync_analyst', c.oid, 'SELECT')
            """
        ).fetchall()
    readable = {name for name, *_ in rows}
    assert {"person", "person_source", "match_decision", "person_overview"} <= readable
    assert not readable & {"analyst_clearance", "sink_offsets", "schema_migrations"}
    for name, kind, enabled, forced, invoker in rows:
        if kind in ("r", "p"):
            assert enabled and forced, f"reconciled.{name} is readable without forced RLS"
        elif name != "my_clearance":
            assert kind == "v" and invoker, f"reconciled.{name} runs with its owner's rights"


def test_list_shows_each_analyst_and_remove_ends_their_access(
    reconciled: Store, analysts: dict[str, AnalystLogin], capsys: pytest.CaptureFixture[str],
) -> None:
    listed = {a.name: a for a in list_analysts(reconciled.admin)}
    for login in analysts.values():
        assert listed[login.name].clearance == login.clearance
    assert listed[analysts["POLICE_ONLY"].name].agencies == (POLICE,)
    capsys.readouterr()
    assert main(["analyst", "list", "--database-url", reconciled.url]) == 0
    assert analysts["SENSITIVE"].name in capsys.readouterr().out

    login = analysts["SENSITIVE"]
    with login.connect() as open_session:
        assert main(["analyst", "remove", login.name, "--database-url", reconciled.url]) == 0
        with pytest.raises(psycopg.OperationalError):
            open_session.execute("SELECT 1")  # their open session was ended
    with pytest.raises(psycopg.OperationalError):
        login.connect()
    assert login.name not in {a.name for a in list_analysts(reconciled.admin)}
    # Never a role that is not an analyst.
    assert main(["analyst", "remove", "tipsync", "--database-url", reconciled.url]) == 2


def test_the_migration_applies_to_a_store_that_already_holds_rows(
    stack: Settings, tmp_path: Path,
) -> None:
    """A store at 0004 with people of two classifications takes 0005; the owner still sees
    (and the sink still writes) everything, an analyst only what the clearance allows."""
    with scratch_database(stack.database_url, "test_n2k_existing") as url:
        shipped = shipped_migrations()
        migrate(url, [m for m in shipped if m.version <= 4])
        official, protected = new_id(), new_id()
        with psycopg.connect(url, autocommit=True) as owner, owner.transaction():
            # the rows a sink of that release wrote (today's sink writes columns of later
            # migrations, e.g. 0008's retention_until)
            for person_id, label, agency, record_id in (
                (official, "OFFICIAL", POLICE, f"E-1-{RUN}"),
                (protected, "VICTIM_PROTECTED", SHELTER, f"E-2-{RUN}"),
            ):
                owner.execute(
                    "INSERT INTO reconciled.person (person_id, golden_version, given_name,"
                    " classification, agencies, source_count) VALUES (%s, 1, 'Old', %s,"
                    " ARRAY[%s], 1)", (person_id, label, agency))
                owner.execute(
                    "INSERT INTO reconciled.person_source (agency_id, source_record_id,"
                    " person_id, source_version) VALUES (%s, %s, %s, 1)",
                    (agency, record_id, person_id))
                owner.execute(
                    "INSERT INTO reconciled.golden_record_state (entity, golden_id,"
                    " golden_version, state) VALUES ('person', %s, 1, 'live')", (person_id,))
        assert [m.version for m in migrate(url)] == [m.version for m in shipped
                                                     if m.version > 4]
        name = f"test_analyst_{RUN}_existing"
        out = tmp_path / "existing.uri"
        assert main(["analyst", "add", name, "--clearance", "OFFICIAL", "--out", str(out),
                     "--database-url", url]) == 0
        try:
            login = AnalystLogin(name, "OFFICIAL", out)
            with login.connect() as connection:
                assert ids(connection, "SELECT person_id FROM reconciled.person") == {official}
            with psycopg.connect(url) as owner:
                assert ids(owner, "SELECT person_id FROM reconciled.person") == {
                    official, protected}
        finally:
            remove_analyst(admin_conninfo(url, stack.pgpass_file), name)
