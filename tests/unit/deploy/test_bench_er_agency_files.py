"""The pipeline path of ``tipsync bench er``: its agency files and its scoring (pure parts)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from deploy.bench import er as bench_er
from deploy.bench import er_pipeline as bench_er_pipeline
from producers.canonical import Entity
from producers.records import RowError, to_source_record


def test_dates_of_birth_are_written_at_their_precision() -> None:
    assert bench_er_pipeline.date_text("1956-04-09", "DAY") == "1956-04-09"
    assert bench_er_pipeline.date_text("1956-09-01", "MONTH") == "1956-09"
    assert bench_er_pipeline.date_text("1956-01-01", "YEAR") == "1956"
    assert bench_er_pipeline.date_text(None, None) == ""


@pytest.mark.parametrize("dataset", ["febrl3", "febrl4"])
@pytest.mark.parametrize("without_identifier", [False, True])
def test_the_producer_accepts_every_febrl_row_and_reads_back_the_harness_record(
    dataset: str, without_identifier: bool
) -> None:
    frame, agency_of = bench_er.febrl_frame(dataset)
    events = bench_er.person_events(frame, agency_of, without_identifier=without_identifier,
                                    seed=7)
    refused = []
    for event in events:
        row = bench_er_pipeline.canonical_row(event)
        try:
            record = to_source_record(Entity.PERSON, row)
        except RowError as error:
            refused.append(f"{event['source_record_id']}: {error}")
            continue
        payload = record.payload
        assert payload["given_name"] == event["given_name"]
        assert payload["family_name"] == event["family_name"]
        assert payload["date_of_birth"] == event["date_of_birth"]
        assert payload["dob_precision"] == event["dob_precision"]
        assert [item["value"] for item in payload["identifiers"]] == [
            item["value"] for item in event["identifiers"]
        ]
        assert [item["line"] for item in payload["addresses"]] == [
            item["line"] for item in event["addresses"]
        ]
        assert record.updated_at == event["event_time"]
    assert refused == []


def test_each_agency_gets_one_file_in_arrival_order(tmp_path: Path) -> None:
    frame, agency_of = bench_er.febrl_frame("febrl4")
    sample = bench_er.sample_frame(frame, 40)
    events = bench_er.person_events(sample, agency_of, without_identifier=False, seed=3)
    files = bench_er_pipeline.write_agency_files(tmp_path, events)
    assert [file.agency for file in files] == sorted(bench_er.FEBRL4_AGENCIES)
    for file in files:
        with open(file.path, newline="", encoding="utf-8") as handle:
            written = [row["source_record_id"] for row in csv.DictReader(handle)]
        arrived = [event["source_record_id"] for event in events
                   if event["agency_id"] == file.agency]
        assert written == arrived and file.rows == len(arrived)


def test_a_sample_keeps_whole_entities() -> None:
    frame, _agency_of = bench_er.febrl_frame("febrl3")
    sample = bench_er.sample_frame(frame, 300)
    assert 250 < len(sample) <= 300
    kept = {bench_er.entity_of(rec_id) for rec_id in sample.index}
    whole = [rec_id for rec_id in frame.index if bench_er.entity_of(rec_id) in kept]
    assert sorted(whole) == sorted(sample.index)


def test_pipeline_quality_scores_the_store_clusters_against_the_truth() -> None:
    truth = bench_er.true_pairs(["rec-1-org", "rec-1-dup-0", "rec-2-org", "rec-2-dup-0"])
    golden_of = {
        ("police-ctu", "rec-1-org"): "person-a",
        ("immigration", "rec-1-dup-0"): "person-a",
        ("police-ctu", "rec-2-org"): "person-b",
        ("immigration", "rec-2-dup-0"): "person-c",
    }
    quality = bench_er_pipeline.pipeline_quality(golden_of, truth, 1.5)
    assert (quality.predicted_pairs, quality.true_positives, quality.true_pairs) == (1, 1, 2)
    assert (quality.precision, quality.recall) == (1.0, 0.5)
    assert quality.blocking_recall is None
