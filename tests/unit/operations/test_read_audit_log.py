"""The read audit's server-log parsing and merging (deploy/operations/audit.py), on jsonlog
lines as PostgreSQL 15 and pgaudit 1.7 write them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from deploy.operations.audit import Filters, merge, parse_server_log

PERSON = "430e7ebb-0bd2-4445-ad24-c132144d4e17"
OTHER = "11111111-2222-4333-8444-555555555555"


def line(message: str, *, user: str = "ana_a", pid: int = 7, database: str = "tipsync",
         at: str = "2026-12-06 05:08:36.372 UTC") -> str:
    return json.dumps({"timestamp": at, "user": user, "dbname": database, "pid": pid,
                       "session_id": "6b14edd4.7", "error_severity": "LOG",
                       "message": message}) + "\n"


def pgaudit(statement: int, substatement: int, kind: str, name: str, rows: int, **kw: str
            ) -> str:
    quoted = '"' + name.replace('"', '""') + '"' if '"' in name else name
    return line(f"AUDIT: OBJECT,{statement},{substatement},READ,SELECT,{kind},{quoted},"
                f"<not logged>,<not logged>,{rows}", **kw)


def test_a_statement_through_a_view_is_reported_as_the_view_with_its_tables() -> None:
    lines = [
        pgaudit(3, 1, "TABLE", "reconciled.golden_record_state", 1),
        pgaudit(3, 2, "VIEW", "reconciled.person_overview", 2),
        pgaudit(3, 2, "TABLE", "reconciled.person", 2),
        pgaudit(3, 2, "TABLE", 'reconciled."case"', 1),
    ]
    statements, persons = parse_server_log(lines, Filters())
    assert persons == []
    [entry] = statements
    assert entry.through == "view reconciled.person_overview"
    assert entry.rows == 2
    assert entry.objects == ("reconciled.golden_record_state", "reconciled.person_overview",
                             "reconciled.person", 'reconciled."case"')
    assert entry.at == datetime(2026, 12, 6, 5, 8, 36, 372000, tzinfo=UTC)


def test_statements_of_other_databases_and_other_messages_are_skipped() -> None:
    lines = [
        pgaudit(1, 1, "TABLE", "reconciled.person", 5, database="tipsync_scratch"),
        line('duplicate key value violates unique constraint "x": Key (name)=(Kevin)'),
        "not json at all AUDIT: OBJECT,\n",
        pgaudit(2, 1, "TABLE", "reconciled.person", 4),
    ]
    statements, _ = parse_server_log(lines, Filters(database="tipsync"))
    assert [(entry.through, entry.rows) for entry in statements] == [
        ("table reconciled.person", 4)]


def test_a_person_read_missing_from_the_store_was_rolled_back() -> None:
    kept, rolled_back = "2026-12-06T05:08:36.100000Z", "2026-12-06T05:08:37.200000Z"
    lines = [line(f"tipsync read: at={kept} path=search_person person={PERSON}"),
             line(f"tipsync read: at={rolled_back} path=case_people person={OTHER}")]
    statements, logged = parse_server_log(lines, Filters())
    stored = [(7, datetime(2026, 12, 6, 5, 8, 36, 100000, tzinfo=UTC), "ana_a",
               "search_person", PERSON)]
    entries = merge(stored, logged, statements, Filters())
    assert [(e.through, e.person_id, e.recorded_in) for e in entries] == [
        ("search_person()", PERSON, "store"),
        ("view reconciled.case_people", OTHER, "server log only"),
    ]


def test_filters_keep_one_analyst_one_person_and_a_time() -> None:
    lines = [pgaudit(1, 1, "TABLE", "reconciled.person", 1, user="ana_b"),
             line(f"tipsync read: at=2026-12-06T05:08:36Z path=person_lineage person={PERSON}",
                  user="ana_b")]
    since = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)

    def report(filters: Filters) -> list[tuple[str, str | None]]:
        statements, logged = parse_server_log(lines, filters)
        return [(e.through, e.person_id) for e in merge([], logged, statements, filters)]

    assert report(Filters(analyst="ana_a")) == []
    # Oldest first: the recorder's time is the statement's start, pgaudit's the log line's.
    assert report(Filters(analyst="ana_b", since=since)) == [
        ("view reconciled.person_lineage", PERSON), ("table reconciled.person", None)]
    # A statement read names objects, never persons: a person filter keeps person reads only.
    assert report(Filters(person_id=PERSON)) == [("view reconciled.person_lineage", PERSON)]
    assert report(Filters(since=datetime(2026, 12, 7, tzinfo=UTC))) == []
