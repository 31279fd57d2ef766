"""tipsync produce on export files, end to end against the real local stack.

Each test publishes to topics under a root of its own (--topic-root) and keeps its
checkpoint under its own TIPSYNC_HOME, so parallel runs never see each other's events.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from producers.canonical import Entity, columns_of
from schemas.config import Settings
from schemas.registration import register_all
from schemas.registry import SchemaRegistry
from schemas.serde import AvroDeserializer
from schemas.topics import TopicNames

AGENCY = "police-ctu"
MAPPED = "child-protection"  # an agency whose export needs a mapping file
PERSON_COLUMNS = list(columns_of(Entity.PERSON))


class Run:
    """One test's topics, state folder and a way to run the CLI and read what it published."""

    def __init__(self, settings: Settings, home: Path) -> None:
        self.settings = settings
        self.home = home
        self.prefix = f"test-{uuid.uuid4().hex[:10]}"
        # agency id -> the file `tipsync agency enroll` handed over for this root
        self.agency_files: dict[str, Path] = {}
        self.topics = TopicNames(self.prefix)
        self.registry = SchemaRegistry(settings.client.registry())
        self.deserialize = AvroDeserializer(self.registry)

    def topic(self, entity: str, agency: str = AGENCY) -> str:
        return self.topics.agency(agency, entity)

    def produce(self, *arguments: str) -> tuple[int, dict[str, Any] | None, str]:
        """``tipsync produce`` as the enrolled agency it names (its own file), else as is."""
        environment = {**os.environ, "TIPSYNC_HOME": str(self.home)}
        agency = arguments[arguments.index("--agency") + 1] if "--agency" in arguments else ""
        credentials = ["--client-config", str(self.agency_files[agency])] \
            if agency in self.agency_files else []
        result = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "produce", "--topic-root", self.prefix,
             "--no-progress", *credentials, *arguments],
            capture_output=True, text=True, env=environment, timeout=300,
        )
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        return result.returncode, json.loads(lines[-1]) if lines else None, result.stderr

    def events(self, entity: str, agency: str = AGENCY) -> list[dict[str, Any]]:
        """Every event on the entity's topic, decoded, in offset order per partition."""
        consumer = Consumer(self.settings.client.librdkafka(
            {"group.id": f"{self.prefix}.reader", "enable.auto.commit": False}
        ))
        topic = self.topic(entity, agency)
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        assignments, wanted = [], 0
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            wanted += high - low
            assignments.append(TopicPartition(topic, partition, low))
        consumer.assign(assignments)
        events: list[dict[str, Any]] = []
        while len(events) < wanted:
            message = consumer.poll(10)
            assert message is not None, f"only {len(events)} of {wanted} events arrived"
            assert message.error() is None, message.error()
            record = self.deserialize(message.value(), expected=entity).record
            assert message.key().decode() == f"{record['agency_id']}:{record['source_record_id']}"
            events.append(record)
        consumer.close()
        return events


@pytest.fixture(scope="module")
def registered(settings: Settings) -> None:
    with SchemaRegistry(settings.client.registry()) as registry:
        register_all(registry)


@pytest.fixture
def run(
    settings: Settings, registered: None, tmp_path: Path,
    enroll_agency: Callable[[str, str], Path],
) -> Iterator[Run]:
    run = Run(settings, tmp_path / "home")
    run.agency_files = {agency: enroll_agency(agency, run.prefix) for agency in (AGENCY, MAPPED)}
    admin = AdminClient(settings.client.librdkafka())
    names = [run.topic(entity.value, agency) for entity in Entity for agency in (AGENCY, MAPPED)]
    for future in admin.create_topics(
        [NewTopic(name, num_partitions=2, replication_factor=1) for name in names]
    ).values():
        future.result(timeout=30)
    deadline = time.monotonic() + 30
    while not set(names) <= set(admin.list_topics(timeout=10).topics):
        assert time.monotonic() < deadline, "the test topics did not appear in 30 s"
        time.sleep(0.2)
    yield run
    admin.delete_topics(names)


def person(source_record_id: str, **values: str) -> dict[str, str]:
    row = dict.fromkeys(PERSON_COLUMNS, "")
    row.update(
        source_record_id=source_record_id, given_name="Ann", family_name="Brown",
        date_of_birth="1990-05-17", sex="F", phone="876-555-1234", parish="St Andrew",
        updated_at="2024-05-01T10:00:00Z",
    )
    row.update(values)
    return row


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=PERSON_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_file_becomes_events_equal_to_its_rows_and_a_rerun_publishes_nothing(
    run: Run, tmp_path: Path
) -> None:
    rows = [
        person("P-1"),
        person("P-2", given_name="  Jose\u0301 ", family_name="Campbell", sex="M",
               phone="(876) 927 1234", parish="KGN", role="victim", case_ref="CTU-1"),
        person("P-3", date_of_birth="1985", trn="123-456-789", citizenship="JM;US"),
    ]
    export = write_csv(tmp_path / "people.csv", rows)
    code, summary, stderr = run.produce("--agency", AGENCY, "--entity", "person",
                                        "--file", str(export))
    assert code == 0, stderr
    assert summary == {"read": 3, "published": 3, "unchanged": 0, "rejected": 0,
                       "rejects_file": None, "flagged": 0, "quality_file": None, "deleted": 0,
                       "stale": 0, "events": 4}
    events = {event["source_record_id"]: event for event in run.events("person")}
    assert set(events) == {"P-1", "P-2", "P-3"}
    second = events["P-2"]
    assert second["op"] == "UPSERT" and second["agency_id"] == AGENCY
    assert second["payload"]["given_name"] == "Jos\u00e9"
    assert second["payload"]["phones"] == ["+18769271234"]
    assert second["payload"]["addresses"][0]["parish"] == "KINGSTON"
    third = events["P-3"]["payload"]
    assert (third["date_of_birth"], third["dob_precision"]) == ("1985-01-01", "YEAR")
    assert third["identifiers"][0]["value"] == "123456789"
    assert third["citizenship"] == ["JM", "US"]
    (link,) = run.events("link")
    assert link["payload"]["from_record_id"] == "P-2"
    assert (link["payload"]["to_record_id"], link["payload"]["link_role"]) == ("CTU-1", "VICTIM")

    code, summary, stderr = run.produce("--agency", AGENCY, "--entity", "person",
                                        "--file", str(export))
    assert code == 0, stderr
    assert summary is not None
    assert (summary["published"], summary["unchanged"]) == (0, 3)
    assert len(run.events("person")) == 3


def test_edited_rows_publish_higher_versions_and_a_full_export_deletes_the_missing(
    run: Run, tmp_path: Path
) -> None:
    export = tmp_path / "people.csv"
    write_csv(export, [person("P-1"), person("P-2"), person("P-3", role="WITNESS",
                                                            case_ref="CTU-2")])
    code, _, stderr = run.produce("--agency", AGENCY, "--entity", "person", "--file", str(export))
    assert code == 0, stderr
    # P-1 edited with a new updated_at, P-2 edited without one, P-3 left the export.
    write_csv(export, [
        person("P-1", family_name="Brown-Reid", updated_at="2024-06-01T10:00:00Z"),
        person("P-2", phone="876-927-1234"),
    ])
    code, summary, stderr = run.produce("--agency", AGENCY, "--entity", "person",
                                        "--file", str(export), "--full-export")
    assert code == 0, stderr
    assert summary is not None
    assert (summary["published"], summary["deleted"], summary["unchanged"]) == (3, 1, 0)
    by_record: dict[str, list[dict[str, Any]]] = {}
    for event in run.events("person"):
        by_record.setdefault(event["source_record_id"], []).append(event)
    first, edited = by_record["P-1"]
    assert edited["source_version"] > first["source_version"]
    assert edited["payload"]["family_name"] == "Brown-Reid"
    first, edited = by_record["P-2"]
    assert edited["source_version"] > first["source_version"]
    created, deleted = by_record["P-3"]
    assert (deleted["op"], deleted["payload"]) == ("DELETE", None)
    assert deleted["source_version"] > created["source_version"]
    link_ops = [event["op"] for event in run.events("link")]
    assert link_ops == ["UPSERT", "DELETE"]  # P-3's link to its case went with it


def test_every_kind_of_bad_row_lands_in_the_rejects_file_and_good_rows_are_published(
    run: Run, tmp_path: Path
) -> None:
    header = ",".join(PERSON_COLUMNS)
    good = ",".join(person("P-1").values())
    lines = [
        header.encode(),
        good.encode(),
        ",".join(person("P-2", date_of_birth="31/02/1990").values()).encode(),
        ",".join(person("P-3", sex="Q").values()).encode(),
        ",".join(person("").values()).encode(),
        ",".join(person("P-1", given_name="Again").values()).encode(),
        b"P-5,Ann,Brown",
        ",".join(person("P-6", family_name="Br\xffown").values()).encode("latin-1"),
        ",".join(person("P-7", address="x" * 5000).values()).encode(),
        ",".join(person("P-8", parish="KSA").values()).encode(),
        ",".join(person("P-9", phone="not a phone").values()).encode(),
    ]
    export = tmp_path / "bad.csv"
    export.write_bytes(b"\n".join(lines) + b"\n")
    # With every column strict (on_invalid: {default: reject}), each bad row is rejected.
    strict = tmp_path / "strict.yaml"
    strict.write_text(
        f"agency: {AGENCY}\nentity: person\ncolumns:\n"
        + "".join(f"  {column}: {column}\n" for column in PERSON_COLUMNS)
        + "on_invalid: {default: reject}\n"
    )
    code, summary, stderr = run.produce("--agency", AGENCY, "--entity", "person",
                                        "--file", str(export), "--mapping", str(strict))
    assert code == 0, stderr
    assert summary is not None
    rejects = [json.loads(line) for line in Path(summary["rejects_file"]).read_text().splitlines()]
    assert (summary["read"], summary["published"], summary["rejected"]) == (10, 1, 9), rejects
    assert summary["flagged"] == 0
    reasons = {reject["row"]: reject["reason"] for reject in rejects}
    expected = {
        3: "date_of_birth '31/02/1990' is not a date",
        4: "sex 'Q' is not a known code",
        5: "source_record_id is empty",
        6: "appears again (first at row 2, again at row 6;",
        7: "the row has 3 columns but the header has",
        8: "not valid text in the file's encoding",
        9: "address is 5000 characters long",
        10: "which is two parishes",
        11: "phone 'not a phone' is not a phone number",
    }
    for row, fragment in expected.items():
        assert fragment in reasons[row], (row, reasons[row])
    assert next(r for r in rejects if r["row"] == 7)["original"] == "P-5,Ann,Brown"
    assert [event["source_record_id"] for event in run.events("person")] == ["P-1"]

    # The default policy (no mapping: keep): a row that cannot be identified or is not a
    # record is rejected; one invalid optional value is left out and flagged, the person kept.
    code, summary, stderr = run.produce("--agency", AGENCY, "--entity", "person",
                                        "--file", str(export))
    assert code == 0, stderr
    assert summary is not None
    rejects = [json.loads(line) for line in Path(summary["rejects_file"]).read_text().splitlines()]
    assert (summary["read"], summary["published"], summary["rejected"]) == (10, 5, 4), rejects
    assert {reject["row"] for reject in rejects} == {5, 6, 7, 8}
    flagged = [json.loads(line) for line in Path(summary["quality_file"]).read_text().splitlines()]
    assert summary["flagged"] == len(flagged) == 5
    assert {(line["row"], line["source_record_id"], line["field"], line["problem"])
            for line in flagged} == {
        (3, "P-2", "date_of_birth", "not_a_date"), (4, "P-3", "sex", "unknown_code"),
        (9, "P-7", "address", "too_long"), (10, "P-8", "parish", "ambiguous_parish"),
        (11, "P-9", "phone", "not_e164"),
    }
    events = {event["source_record_id"]: event for event in run.events("person")}
    assert set(events) == {"P-1", "P-2", "P-3", "P-7", "P-8", "P-9"}
    assert events["P-2"]["payload"]["date_of_birth"] is None
    assert events["P-2"]["quality_issues"] == [{"field": "date_of_birth", "problem": "not_a_date"}]
    assert events["P-1"]["quality_issues"] == []


def test_a_differently_shaped_agency_export_is_read_through_its_mapping(
    run: Run, tmp_path: Path
) -> None:
    mapping = tmp_path / "child-protection.yaml"
    mapping.write_text(
        """
agency: child-protection
entity: person
format: csv
delimiter: ";"
encoding: cp1252
columns:
  source_record_id: ChildRef
  date_of_birth: DOB
  phone: Contact
  sex: Gender
  parish: Parish
  updated_at: LastModified
split:
  FullName: {into: [family_name, given_name, middle_name], style: family_comma_given}
dates:
  date_of_birth: ["%d/%m/%Y", "%Y"]
  updated_at: ["%d/%m/%Y %H:%M"]
codes:
  sex: {"1": FEMALE, "2": MALE, "9": UNKNOWN}
constants:
  citizenship: JM
""",
        encoding="utf-8",
    )
    export = tmp_path / "children.csv"
    export.write_bytes(
        "ChildRef;FullName;DOB;Gender;Contact;Parish;LastModified;Notes\n"
        "CP-001;Brown, Zoë Ann;17/05/2010;1;8765551234;Saint Catherine;01/05/2024 09:30;x\n"
        "CP-002;Reid, Kemar;2011;2;;st james;02/05/2024 10:00;\n".encode("cp1252")
    )
    code, summary, stderr = run.produce(
        "--agency", "child-protection", "--entity", "person", "--file", str(export),
        "--mapping", str(mapping),
    )
    assert code == 0, stderr
    assert summary is not None and summary["published"] == 2
    run_topic = {event["source_record_id"]: event for event in run.events("person", MAPPED)}
    zoe = run_topic["CP-001"]["payload"]
    assert (zoe["family_name"], zoe["given_name"], zoe["middle_name"]) == ("Brown", "Zoë", "Ann")
    assert (zoe["date_of_birth"], zoe["dob_precision"]) == ("2010-05-17", "DAY")
    assert zoe["sex"] == "FEMALE"
    assert zoe["phones"] == ["+18765551234"] and zoe["citizenship"] == ["JM"]
    assert zoe["addresses"][0]["parish"] == "ST_CATHERINE"
    kemar = run_topic["CP-002"]["payload"]
    assert (kemar["date_of_birth"], kemar["dob_precision"]) == ("2011-01-01", "YEAR")


def test_an_invalid_mapping_an_unknown_agency_and_an_unreachable_broker_are_fatal(
    run: Run, tmp_path: Path
) -> None:
    export = write_csv(tmp_path / "people.csv", [person("P-1")])
    mapping = tmp_path / "bad.yaml"
    mapping.write_text("agency: police-ctu\nentity: person\ncolumns: {date_of_brith: DOB}\n")
    code, summary, stderr = run.produce("--agency", AGENCY, "--entity", "person",
                                        "--file", str(export), "--mapping", str(mapping))
    assert (code, summary) == (1, None)
    assert "columns.date_of_brith" in stderr and "did you mean date_of_birth" in stderr

    code, summary, stderr = run.produce("--agency", "no-such-agency", "--entity", "person",
                                        "--file", str(export))
    assert (code, summary) == (1, None)
    assert "not in the agency registry" in stderr

    environment_home = run.home
    assert run.settings.client.source is not None
    unreachable = tmp_path / "unreachable.properties"  # the same credentials, nobody there
    unreachable.touch(mode=0o600)
    unreachable.write_text(run.settings.client.source.read_text(encoding="utf-8")
                           + "bootstrap.servers=127.0.0.1:1\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "produce", "--agency", AGENCY, "--entity",
         "person", "--file", str(export), "--no-progress", "--client-config", str(unreachable)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "TIPSYNC_HOME": str(environment_home)},
    )
    assert result.returncode == 1 and result.stdout == ""
    assert "did not answer" in result.stderr


def test_kill_9_in_the_middle_of_a_file_and_a_rerun_publish_every_row(
    run: Run, tmp_path: Path
) -> None:
    from deploy.bench.synthetic import write_person_csv

    export = write_person_csv(tmp_path / "many.csv", 3_000)
    environment = {**os.environ, "TIPSYNC_HOME": str(run.home)}
    command = [sys.executable, "-m", "deploy.cli", "produce", "--topic-root", run.prefix,
               "--no-progress", "--agency", AGENCY, "--entity", "person", "--file", str(export),
               "--client-config", str(run.agency_files[AGENCY])]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE)
    consumer = Consumer(run.settings.client.librdkafka({"group.id": f"{run.prefix}.watch"}))
    topic = run.topic("person")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        published = sum(
            consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
            for partition in (0, 1)
        )
        if published >= 300:
            break
        time.sleep(0.05)
    consumer.close()
    killed = process.poll() is None
    process.kill()  # SIGKILL: no flush, no final checkpoint save
    process.wait()
    code, summary, stderr = run.produce("--agency", AGENCY, "--entity", "person",
                                        "--file", str(export))
    assert code == 0, stderr
    assert summary is not None
    identifiers = {event["source_record_id"] for event in run.events("person")}
    assert identifiers == {f"P-{index:07d}" for index in range(1, 3_001)}
    if killed:
        assert summary["unchanged"] < 3_000  # the rerun did work the killed run had not


def test_a_full_export_deletes_no_record_whose_id_it_had_to_tidy(
    run: Run, tmp_path: Path
) -> None:
    # "A  2" is published as "A 2"; it must count as present, on this run and every next one.
    # "A\u00a02" is the same id once tidied: a duplicate of row 2, named by both rows.
    export = write_csv(tmp_path / "people.csv", [
        person("A  2"), person(" B-1 "), person("A\u00a02", given_name="Bo"),
    ])
    arguments = ("--agency", AGENCY, "--entity", "person", "--file", str(export),
                 "--full-export")
    code, summary, stderr = run.produce(*arguments)
    assert code == 0, stderr
    assert summary is not None
    rejects = [json.loads(line) for line in Path(summary["rejects_file"]).read_text().splitlines()]
    assert [(reject["row"], "first at row 2, again at row 4" in reject["reason"])
            for reject in rejects] == [(4, True)]
    assert (summary["published"], summary["deleted"], summary["rejected"]) == (2, 0, 1)

    code, summary, stderr = run.produce(*arguments)
    assert code == 0, stderr
    assert summary is not None
    assert (summary["published"], summary["unchanged"], summary["deleted"]) == (0, 2, 0)
    published = [(event["source_record_id"], event["op"]) for event in run.events("person")]
    assert sorted(published) == [("A 2", "UPSERT"), ("B-1", "UPSERT")]
    assert next(e for e in run.events("person") if e["source_record_id"] == "A 2")[
        "payload"]["given_name"] == "Ann"  # the first row, not the duplicate
