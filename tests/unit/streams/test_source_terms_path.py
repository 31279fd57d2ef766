"""An event's legal basis and consent reference travel with its source record: ingest's
lineage entry of a case, resolve's held person and golden person, a snapshot and the rebuild
from it, and the reconciled Avro schema (whose older readers skip them). Nothing running."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import fastavro

from schemas.agencies import load_agencies
from schemas.avro import avro_schema
from schemas.examples import example_event, example_reconciled
from schemas.reconciled import GoldenCase, GoldenPerson
from streams.ingest import check_event, golden_entity, source_of
from streams.resolve import Resolver
from streams.resolve_stage import trust_ranks
from streams.snapshot import read_snapshot, write_snapshot
from tests.unit.streams.test_erasure_tombstones import _stage
from tests.unit.streams.test_ingest_handler import POLICE

NOW_MS = 1_800_000_000_000
CONSENTED = {"legal_basis": "CONSENT", "consent_ref": "SH-CONSENT-0042"}


def _event(entity: str, record: str, **envelope: Any) -> Any:
    return check_event(POLICE, entity, f"{POLICE}:{record}".encode(),
                       example_event(entity, POLICE, record, **envelope), now_ms=NOW_MS)


def _round_trip(model: Any, value: dict[str, Any], reader: Any = None) -> dict[str, Any]:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(avro_schema(model)), value)
    buffer.seek(0)
    writer = fastavro.parse_schema(avro_schema(model))
    return fastavro.schemaless_reader(buffer, writer, reader or writer)


def test_a_case_keeps_its_legal_basis_and_consent_ref_in_its_lineage() -> None:
    _, golden = golden_entity(_event("case", "C-1", **CONSENTED))
    assert golden is not None
    (source,) = golden["sources"]
    assert (source["legal_basis"], source["consent_ref"]) == ("CONSENT", "SH-CONSENT-0042")
    read = _round_trip(GoldenCase, golden)
    assert read["sources"][0]["legal_basis"] == "CONSENT"
    assert read["sources"][0]["consent_ref"] == "SH-CONSENT-0042"


def test_without_a_consent_ref_the_key_is_left_to_the_avro_default() -> None:
    source = source_of(_event("case", "C-1"))  # ADMINISTRATION_OF_JUSTICE, no consent ref
    assert source["legal_basis"] == "ADMINISTRATION_OF_JUSTICE"
    assert "consent_ref" not in source


def test_a_golden_person_lists_each_source_under_its_own_terms(tmp_path: Path) -> None:
    stage = _stage()
    person = None
    for record, terms in (("P-1", CONSENTED), ("P-2", {"legal_basis": "LEGAL_OBLIGATION"})):
        for output in stage.apply(_event("person", record, **terms), golden_version=1):
            if output.kind == "person" and output.value and output.value["sources"]:
                person = output.value
    assert person is not None  # the example people are one person: both records in one
    terms_of = {source["source_record_id"]: (source.get("legal_basis"),
                                             source.get("consent_ref"))
                for source in person["sources"]}
    assert terms_of == {"P-1": ("CONSENT", "SH-CONSENT-0042"), "P-2": ("LEGAL_OBLIGATION", None)}
    read = _round_trip(GoldenPerson, person)
    assert {source["source_record_id"]: (source["legal_basis"], source["consent_ref"])
            for source in read["sources"]} == terms_of
    # and a worker rebuilt from a snapshot gives the same lineage
    written = write_snapshot(tmp_path, stage, 2, "topic-id")
    _, rebuilt = read_snapshot(written.path, lambda state: Resolver.from_state(
        state, trust=trust_ranks(load_agencies())))
    golden = rebuilt.resolver.golden(person["person_id"])
    assert golden is not None
    assert {source["source_record_id"]: (source.get("legal_basis"), source.get("consent_ref"))
            for source in golden["sources"]} == terms_of


def test_an_older_reader_of_the_reconciled_schema_skips_the_terms() -> None:
    golden = example_reconciled("person")
    golden["sources"][0].update(CONSENTED)
    older = avro_schema(GoldenPerson)
    source_fields = older["fields"][[f["name"] for f in older["fields"]].index("sources")]
    record = source_fields["type"]["items"]
    record["fields"] = [field for field in record["fields"]
                        if field["name"] not in ("legal_basis", "consent_ref")]
    read = _round_trip(GoldenPerson, golden, fastavro.parse_schema(older))
    assert "consent_ref" not in read["sources"][0]
    assert read["person_id"] == golden["person_id"]
