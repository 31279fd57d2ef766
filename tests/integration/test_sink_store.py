"""The reconciled store's write path, migrations and analyst access, on the real PostgreSQL.

Each test module gets a throwaway database (the schema's names are fixed), migrated once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from deploy.bench.scratch import scratch_database
from schemas.config import Settings
from schemas.examples import example_reconciled
from sinks import store
from sinks.migrate import Migration, MigrationError, checksum_of, migrate, shipped_migrations
from sinks.records import golden_rows
from sinks.roles import conninfo_as
from sinks.tables import CASE, LINK, PERSON


@pytest.fixture(scope="module")
def database_url(stack: Settings) -> Iterator[str]:
    with scratch_database(stack.database_url, "test_store") as url:
        migrate(url)
        yield url


@pytest.fixture
def connection(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        store.prepare_session(connection, [PERSON, CASE, LINK])
        yield connection


@contextmanager
def as_analyst_group(database_url: str) -> Iterator[psycopg.Connection]:
    """A session as the analyst group: the administrator becomes it (the owner is not a
    member of the group; nobody but the administrator manages it)."""
    with psycopg.connect(conninfo_as(database_url, "tipsync_admin"),
                         autocommit=True) as connection:
        connection.execute("SET ROLE tipsync_analyst")
        yield connection


def person(version: int, given_name: str = "Tamika", family_name: str = "Sample",
           sources: list[tuple[str, str, int]] | None = None, **fields: Any) -> dict[str, Any]:
    record = example_reconciled("person")
    record.update({"golden_version": version, "given_name": given_name,
                   "family_name": family_name, "middle_name": None, "aliases": [], **fields})
    if sources is None:  # a source record of its own, so tests never share one
        sources = [("police-ctu", f"R-{uuid.uuid4().hex[:12]}", version)]
    record["sources"] = [
        {"agency_id": agency, "source_record_id": record_id, "source_version": source_version,
         "event_time": record["last_updated"], "deleted": False}
        for agency, record_id, source_version in sources
    ]
    return record


def write(connection: psycopg.Connection, *changes: tuple[str, dict[str, Any] | None]) -> None:
    with connection.transaction():
        store.write_entity(connection, PERSON, [
            golden_rows(PERSON, golden_id, record) for golden_id, record in changes
        ])


def one(connection: psycopg.Connection, query: str, *params: Any) -> Any:
    row = connection.execute(query, params).fetchone()
    return row[0] if row else None


def new_id() -> str:
    return str(uuid.uuid4())


def test_a_stale_version_never_replaces_a_newer_one(connection: psycopg.Connection) -> None:
    person_id = new_id()
    write(connection, (person_id, person(5, given_name="Newer")))
    write(connection, (person_id, person(4, given_name="Older")))
    write(connection, (person_id, person(5, given_name="Same version, replayed")))
    assert one(connection, "SELECT given_name FROM reconciled.person WHERE person_id = %s",
               person_id) == "Newer"


def test_a_newer_version_replaces_the_row_and_its_sources(connection: psycopg.Connection) -> None:
    person_id = new_id()
    first, second = f"P-{person_id[:8]}", f"S-{person_id[:8]}"
    write(connection, (person_id, person(1, sources=[("police-ctu", first, 1),
                                                     ("safe-haven-shelter", second, 1)])))
    write(connection, (person_id, person(2, family_name="Renamed",
                                         sources=[("police-ctu", first, 2)])))
    row = connection.execute(
        "SELECT family_name, agencies, source_count FROM reconciled.person WHERE person_id = %s",
        (person_id,),
    ).fetchone()
    assert row == ("Renamed", ["police-ctu"], 1)
    sources = connection.execute(
        "SELECT agency_id, source_record_id, source_version FROM reconciled.person_source"
        " WHERE person_id = %s", (person_id,),
    ).fetchall()
    assert sources == [("police-ctu", first, 2)]


def test_a_tombstone_deletes_and_an_older_replay_does_not_resurrect(
    connection: psycopg.Connection,
) -> None:
    person_id = new_id()
    write(connection, (person_id, person(3, sources=[("police-ctu", f"T-{person_id[:8]}", 3)])))
    write(connection, (person_id, None))
    write(connection, (person_id, person(3)))
    assert one(connection, "SELECT count(*) FROM reconciled.person WHERE person_id = %s",
               person_id) == 0
    assert one(connection, "SELECT count(*) FROM reconciled.person_source WHERE person_id = %s",
               person_id) == 0
    assert one(connection, "SELECT state FROM reconciled.golden_record_state"
               " WHERE golden_id = %s", person_id) == "deleted"


def test_a_merged_id_resolves_to_its_survivor_and_its_sources_move(
    connection: psycopg.Connection,
) -> None:
    merged, survivor = new_id(), new_id()
    record_id = f"M-{merged[:8]}"
    write(connection, (merged, person(1, sources=[("immigration", record_id, 4)])))
    # The resolver publishes the survivor with the source and the merged id as a pointer,
    # in one batch here: the source row must end with the survivor either way.
    write(connection, (survivor, person(7, sources=[("immigration", record_id, 4)])),
          (merged, {"golden_version": 2, "merged_into": survivor}))
    assert one(connection, "SELECT reconciled.resolve_person_id(%s)", merged) == uuid.UUID(
        survivor
    )
    assert one(connection, "SELECT reconciled.resolve_person_id(%s)", survivor) == uuid.UUID(
        survivor
    )
    assert one(connection, "SELECT survivor_id FROM reconciled.person_merge"
               " WHERE merged_id = %s", merged) == uuid.UUID(survivor)
    assert one(connection, "SELECT count(*) FROM reconciled.person WHERE person_id = %s",
               merged) == 0
    assert one(connection, "SELECT person_id FROM reconciled.person_source WHERE agency_id ="
               " 'immigration' AND source_record_id = %s", record_id) == uuid.UUID(survivor)


def test_a_source_stays_with_the_newest_golden_record_whatever_the_batches(
    connection: psycopg.Connection,
) -> None:
    # Found by `tipsync bench er --through-pipeline`: the resolver moves a source record from
    # golden id A (version 31) to B (version 211) and publishes A as merged into B (211).
    # A and B live on different partitions of tip.reconciled.person, so the sink may see
    # A@31 and B@211 in one batch and A's merge in the next, or B before A@31. The source
    # must end with B in every order (it once ended with A, then was dropped with A's merge).
    for order in ("together", "stale-late"):
        merged, survivor = new_id(), new_id()
        moved, other = f"V-{merged[:8]}", f"W-{merged[:8]}"
        merged_upsert = person(31, sources=[("police-ctu", moved, 1)])
        survivor_upsert = person(211, sources=[("immigration", other, 1),
                                               ("police-ctu", moved, 1)])
        merge = {"golden_version": 211, "merged_into": survivor}
        if order == "together":
            write(connection, (merged, merged_upsert), (survivor, survivor_upsert))
        else:
            write(connection, (survivor, survivor_upsert))
            write(connection, (merged, merged_upsert))
        write(connection, (merged, merge))
        assert one(connection, "SELECT person_id FROM reconciled.person_source WHERE agency_id"
                   " = 'police-ctu' AND source_record_id = %s", moved) == uuid.UUID(survivor), order
        assert one(connection, "SELECT count(*) FROM reconciled.person_source WHERE person_id"
                   " = %s", survivor) == 2, order


def test_lineage_reads_as_a_table(connection: psycopg.Connection) -> None:
    person_id = new_id()
    write(connection, (person_id, person(1)))
    lineage = connection.execute(
        "SELECT field, agency_id, source_record_id FROM reconciled.person_lineage"
        " WHERE person_id = %s", (person_id,),
    ).fetchall()
    assert lineage == [("date_of_birth", "immigration", "IMM-77")]


def test_offsets_move_only_from_the_value_this_sink_read(connection: psycopg.Connection) -> None:
    topic = f"test.{uuid.uuid4().hex}"
    with connection.transaction():
        store.advance_offsets(connection, "group-a", [store.OffsetAdvance(topic, 0, None, 10)])
    with pytest.raises(store.OffsetFenceError, match="no longer 7"), connection.transaction():
        store.advance_offsets(connection, "group-a", [store.OffsetAdvance(topic, 0, 7, 20)])
    assert store.stored_offsets(connection, "group-a", [topic]) == {(topic, 0): 10}


def test_people_linked_to_a_case_appear_in_the_views(connection: psycopg.Connection) -> None:
    person_id, case_id, link_id = new_id(), new_id(), new_id()
    write(connection, (person_id, person(1, given_name="Shanice", family_name="Viewtest")))
    case = example_reconciled("case") | {"case_id": case_id, "case_ref": f"CTU-{case_id[:6]}"}
    link = example_reconciled("link") | {"link_id": link_id, "from_id": person_id,
                                         "to_id": case_id}
    with connection.transaction():
        store.write_entity(connection, CASE, [golden_rows(CASE, case_id, case)])
        store.write_entity(connection, LINK, [golden_rows(LINK, link_id, link)])
    assert connection.execute(
        "SELECT person_id, role FROM reconciled.case_people WHERE case_id = %s", (case_id,)
    ).fetchall() == [(uuid.UUID(person_id), "VICTIM")]
    cases = one(connection, "SELECT cases FROM reconciled.person_overview WHERE person_id = %s",
                person_id)
    assert [(entry["case_ref"], entry["role"]) for entry in cases] == [
        (case["case_ref"], "VICTIM")
    ]


def test_a_misspelled_name_finds_the_right_person(connection: psycopg.Connection) -> None:
    wanted = new_id()
    write(
        connection,
        (wanted, person(1, given_name="Kevin", family_name="Campbellton",
                        aliases=["Kev C"], date_of_birth="1985-07-12", dob_precision="DAY")),
        (new_id(), person(1, given_name="Keisha", family_name="Campbellton")),
        (new_id(), person(1, given_name="Marlon", family_name="Whitfield")),
    )
    matches = connection.execute(
        "SELECT person_id, score FROM reconciled.search_person(%s)", ("Kevn Cambelton",)
    ).fetchall()
    assert matches[0][0] == uuid.UUID(wanted)
    with_dob = connection.execute(
        "SELECT person_id FROM reconciled.search_person(%s, %s)", ("Campbellton", "1985-07-12")
    ).fetchall()
    assert with_dob[0][0] == uuid.UUID(wanted)


def test_the_analyst_role_reads_but_cannot_write(database_url: str) -> None:
    with as_analyst_group(database_url) as connection:
        assert one(connection, "SELECT count(*) FROM reconciled.person_overview") >= 0
        for statement in (
            "INSERT INTO reconciled.sink_offsets VALUES ('analyst', 't', 0, 0)",
            "UPDATE reconciled.person SET given_name = 'x'",
            "DELETE FROM reconciled.person_source",
            "CREATE TABLE reconciled.analyst_scratch (id int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)


def test_an_edited_released_migration_is_refused_by_the_database(database_url: str) -> None:
    first = shipped_migrations()[0]
    edited_sql = first.sql + "\n-- edited\n"
    edited = Migration(first.version, first.name, edited_sql, checksum_of(edited_sql))
    with pytest.raises(MigrationError, match=f"{first.file_name} was edited after it was"):
        migrate(database_url, [edited, *shipped_migrations()[1:]])
    assert migrate(database_url) == []


def test_refused_changes_are_isolated_and_the_others_written(
    connection: psycopg.Connection,
) -> None:
    ids = [new_id() for _ in range(9)]
    changes = [
        golden_rows(PERSON, golden_id, person(1, dob_precision="DECADE" if index in (2, 7)
                                              else "DAY"))
        for index, golden_id in enumerate(ids)
    ]
    with connection.transaction():
        refused = store.write_isolating(
            connection, lambda items: store.write_entity(connection, PERSON, items), changes
        )
    assert sorted(change.golden_id for change, _ in refused) == sorted([ids[2], ids[7]])
    assert {type(error).__name__ for _, error in refused} == {"CheckViolation"}
    assert one(connection, "SELECT count(*) FROM reconciled.person WHERE person_id = ANY(%s)",
               [uuid.UUID(golden_id) for golden_id in ids]) == 7


def test_a_source_s_quality_issues_are_stored_and_counted_per_agency(
    connection: psycopg.Connection, database_url: str
) -> None:
    """Issue 13 item 3: a person kept without an invalid date of birth shows its issue in the
    store, per source record and per agency, and an analyst can read both views."""
    person_id = new_id()
    flagged, clean = f"Q-{person_id[:8]}", f"C-{person_id[:8]}"
    agency = f"quality-{person_id[:8]}"
    record = person(3, sources=[(agency, flagged, 3), (agency, clean, 3)], date_of_birth=None,
                    dob_precision=None, date_of_birth_text="1943-01-77")
    record["sources"][0]["quality_issues"] = [
        {"field": "date_of_birth", "problem": "impossible_date"},
        {"field": "phone", "problem": "not_e164"},
    ]
    write(connection, (person_id, record))
    issues = dict(connection.execute(
        "SELECT source_record_id, quality_issues FROM reconciled.person_source"
        " WHERE person_id = %s", (person_id,),
    ).fetchall())
    assert issues == {flagged: record["sources"][0]["quality_issues"], clean: []}
    assert one(connection, "SELECT date_of_birth_text FROM reconciled.person"
               " WHERE person_id = %s", person_id) == "1943-01-77"
    rows = connection.execute(
        "SELECT field, problem, values_flagged, records_flagged, records"
        " FROM reconciled.data_quality_by_agency WHERE agency_id = %s AND entity = 'person'"
        " ORDER BY field", (agency,),
    ).fetchall()
    assert rows == [("date_of_birth", "impossible_date", 1, 1, 2), ("phone", "not_e164", 1, 1, 2)]
    # The next version of the record without the issue clears it.
    fixed = person(4, sources=[(agency, flagged, 4), (agency, clean, 3)])
    write(connection, (person_id, fixed))
    assert one(connection, "SELECT count(*) FROM reconciled.data_quality_issue"
               " WHERE agency_id = %s", agency) == 0
    with as_analyst_group(database_url) as analyst:
        assert one(analyst, "SELECT count(*) FROM reconciled.data_quality_by_agency") >= 0
        assert one(analyst, "SELECT count(*) FROM reconciled.data_quality_issue") >= 0


def test_each_batch_empties_the_temporary_tables_and_a_truncate_gives_their_space_back(
    connection: psycopg.Connection,
) -> None:
    temporary = ("incoming_person", "accepted_person", "incoming_person_source")

    def sizes() -> list[int]:
        return [one(connection, "SELECT pg_relation_size(%s::regclass)", name)
                for name in temporary]

    store.truncate_temporary(connection, [PERSON, CASE, LINK])
    for version in range(1, 4):
        write(connection, (new_id(), person(version)), (new_id(), person(version)))
        # emptied by DELETE (a TRUNCATE per batch costs PostgreSQL ~4 ms, sinks/store.py)...
        for name in temporary:
            assert one(connection, f"SELECT count(*) FROM {name}") == 0
    # ...whose dead rows keep their pages until the writer truncates between two batches
    assert all(size > 0 for size in sizes())
    store.truncate_temporary(connection, [PERSON, CASE, LINK])
    assert sizes() == [0, 0, 0]
    person_id = new_id()
    write(connection, (person_id, person(1, given_name="Afterwards")))
    assert one(connection, "SELECT given_name FROM reconciled.person WHERE person_id = %s",
               person_id) == "Afterwards"


def test_a_batch_looks_its_records_up_by_key_instead_of_scanning_the_store(
    connection: psycopg.Connection,
) -> None:
    """A batch's cost must not grow with the store: no statement of a batch reads a whole
    store table (sinks/store.py, above statements_for). The plans are PostgreSQL's own, for a
    batch of the steady benchmark's size on a store of a few thousand records."""
    people = {new_id(): person(1) for _ in range(3_000)}
    write(connection, *people.items())
    for table in ("golden_record_state", "person", "person_source"):
        connection.execute(f"ANALYZE reconciled.{table}")
    updated = list(people.items())[:20]
    batch = [golden_rows(PERSON, golden_id, {**record, "golden_version": 2})
             for golden_id, record in updated]
    batch.append(golden_rows(PERSON, list(people)[-1], None))  # and a tombstone
    statements = store.statements_for(PERSON)
    steps = ("accept", "record_state", "delete_retired", "collect_sources",
             "delete_dropped_sources", "upsert", "upsert_sources")
    scans: dict[str, list[str]] = {}
    with connection.transaction(force_rollback=True), connection.cursor() as cursor:
        store.copy_rows(cursor, statements.copy_incoming, store.incoming_rows(batch))
        for step in steps:
            (plan,), = cursor.execute(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {getattr(statements, step)}").fetchall()
            scans[step] = sorted(_sequential_scans(plan[0]["Plan"]))
        # the batch was applied for real: 20 updates and the tombstone accepted
        assert one(connection, "SELECT count(*) FROM accepted_person") == 21
    assert scans == {step: [] for step in steps}


def _sequential_scans(node: dict[str, Any]) -> Iterator[str]:
    """The store tables a plan reads whole (the session's temporary tables are the batch)."""
    if node["Node Type"] == "Seq Scan" and not node["Relation Name"].startswith(
            ("incoming_", "accepted_")):
        yield node["Relation Name"]
    for child in node.get("Plans", []):
        yield from _sequential_scans(child)
