"""Issue 15, on the real stack: the legal basis and consent reference an agency publishes
reach the store through ingest, resolve and the sink; analysts read the legal basis of the
source records their clearance shows them and never the consent reference, which the store's
owner (the data protection officer's connection) reads; ``tipsync erase --agency ID --consent
REF`` erases every record shared under a withdrawn consent. Analysts are made with ``tipsync
analyst add`` and connect through the file it wrote. All people here are invented."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from deploy.cli import main
from deploy.operations.analysts import admin_conninfo, read_connection_file, remove_analyst
from schemas.config import Settings
from schemas.examples import example_event
from tests.integration.erasure_pipeline import ErasurePipeline, erasure_pipeline, person_event

RUN = uuid.uuid4().hex[:8]
CONSENT_REF = f"SH-CONSENT-{RUN}"
# one golden person: the police's record on consent, immigration's on a legal obligation
CONSENTED = ("police-ctu", "P-LB-1")
OBLIGED = ("immigration", "I-LB-2")


@pytest.fixture(scope="module")
def pipeline(stack: Settings) -> Iterator[ErasurePipeline]:
    with erasure_pipeline(stack, "test_legal_basis") as running:
        running.publish(
            "person",
            person_event(*CONSENTED, "Imani", "Consenta", "900300401",
                         legal_basis="CONSENT", consent_ref=CONSENT_REF),
            person_event(*OBLIGED, "Imani", "Consenta", "900300401",
                         legal_basis="LEGAL_OBLIGATION"),
        )
        running.publish("case", example_event("case", "police-ctu", "C-LB-3",
                                              legal_basis="PUBLIC_FUNCTION"))
        running.wait_for(lambda: running.stored(*CONSENTED) and running.stored(*OBLIGED)
                         and running.stored("police-ctu", "C-LB-3", "case"),
                         "the two person records and the case in the store")
        yield running


@pytest.fixture(scope="module")
def analysts(pipeline: ErasurePipeline, stack: Settings,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    folder = tmp_path_factory.mktemp("terms_analysts")
    made: dict[str, Path] = {}
    try:
        for clearance in ("OFFICIAL", "VICTIM_PROTECTED"):
            name = f"test_terms_{RUN}_{clearance.lower()}"
            out = folder / f"{name}.uri"
            assert main(["analyst", "add", name, "--clearance", clearance, "--out", str(out),
                         "--database-url", pipeline.database_url]) == 0
            made[clearance] = out
        yield made
    finally:
        admin = admin_conninfo(pipeline.database_url, stack.pgpass_file)
        for uri_file in made.values():
            remove_analyst(admin, uri_file.stem)


def _as_analyst(uri_file: Path, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(read_connection_file(uri_file), autocommit=True) as connection:
        return connection.execute(query).fetchall()  # type: ignore[arg-type]


def test_the_store_keeps_each_source_records_legal_basis_and_consent_ref(
    pipeline: ErasurePipeline,
) -> None:
    rows = pipeline.rows(
        "SELECT agency_id, source_record_id, legal_basis, consent_ref"
        " FROM reconciled.person_source WHERE source_record_id IN (%s, %s)",
        CONSENTED[1], OBLIGED[1])
    assert sorted(rows) == [(*OBLIGED, "LEGAL_OBLIGATION", None),
                            (*CONSENTED, "CONSENT", CONSENT_REF)]
    # one golden person, whose sources carry both
    assert len({row[0] for row in pipeline.rows(
        "SELECT person_id FROM reconciled.person_source WHERE source_record_id IN (%s, %s)",
        CONSENTED[1], OBLIGED[1])}) == 1
    assert pipeline.rows(
        "SELECT legal_basis, consent_ref FROM reconciled.case_source"
        " WHERE source_record_id = 'C-LB-3'") == [("PUBLIC_FUNCTION", None)]


def test_an_analyst_reads_the_legal_basis_within_clearance_and_never_the_consent_ref(
    pipeline: ErasurePipeline, analysts: dict[str, Path],
) -> None:
    cleared = analysts["VICTIM_PROTECTED"]
    assert sorted(_as_analyst(
        cleared, "SELECT source_record_id, legal_basis FROM reconciled.person_source"
        f" WHERE source_record_id IN ('{CONSENTED[1]}', '{OBLIGED[1]}')"
    )) == [(OBLIGED[1], "LEGAL_OBLIGATION"), (CONSENTED[1], "CONSENT")]
    for query in ("SELECT consent_ref FROM reconciled.person_source",
                  "SELECT * FROM reconciled.case_source",
                  "SELECT count(*) FROM reconciled.link_source WHERE consent_ref IS NOT NULL"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _as_analyst(cleared, query)
    # the example records are SENSITIVE: an OFFICIAL analyst sees neither row nor basis
    assert _as_analyst(
        analysts["OFFICIAL"], "SELECT legal_basis FROM reconciled.person_source"
        f" WHERE source_record_id IN ('{CONSENTED[1]}', '{OBLIGED[1]}')") == []


def test_a_withdrawn_consent_erases_the_records_shared_under_it_only(
    pipeline: ErasurePipeline,
) -> None:
    unknown = pipeline.tipsync("erase", "--agency", "police-ctu", "--consent", "NO-SUCH-REF",
                               "--yes")
    assert unknown.returncode == 2
    assert "has no record in the store shared under consent 'NO-SUCH-REF'" in unknown.stderr
    erased = pipeline.tipsync("erase", "--agency", "police-ctu", "--consent", CONSENT_REF,
                              "--yes")
    assert erased.returncode == 0, erased.stderr
    assert "erased 1 source record(s): person police-ctu:P-LB-1" in erased.stdout
    assert not pipeline.stored(*CONSENTED)
    assert pipeline.stored(*OBLIGED)  # shared on a legal obligation: stays
    assert pipeline.stored("police-ctu", "C-LB-3", "case")
    assert CONSENT_REF not in erased.stdout + erased.stderr  # the reference is not echoed
