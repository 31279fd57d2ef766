"""Fitting weights without labels, and the FEBRL harness's pure parts."""

from __future__ import annotations

from deploy.bench import er as bench_er
from streams.resolve.records import person_features, source_record_from_event
from streams.resolve.training import fit_scoring_model


def test_febrl_dates_that_do_not_exist_are_kept_at_a_coarser_precision():
    assert bench_er.febrl_date_of_birth("19560409") == ("1956-04-09", "DAY")
    assert bench_er.febrl_date_of_birth("19560931") == ("1956-09-01", "MONTH")
    assert bench_er.febrl_date_of_birth("19561331") == ("1956-01-01", "YEAR")
    assert bench_er.febrl_date_of_birth("") == (None, None)


def test_pairwise_quality_counts_pairs_within_clusters():
    truth = bench_er.true_pairs(["rec-1-org", "rec-1-dup-0", "rec-1-dup-1", "rec-2-org"])
    assert truth == {("rec-1-dup-0", "rec-1-dup-1"), ("rec-1-dup-0", "rec-1-org"),
                     ("rec-1-dup-1", "rec-1-org")}
    predicted = bench_er.pairs_within([["rec-1-org", "rec-1-dup-0"], ["rec-2-org"]])
    quality = bench_er.Quality(len(predicted), len(truth), len(predicted & truth), None, 0.0)
    assert (quality.precision, round(quality.recall, 4)) == (1.0, 0.3333)


def test_em_on_unlabelled_febrl_records_learns_that_agreement_means_a_match():
    frame, agency_of = bench_er.febrl_frame("febrl3")
    events = bench_er.person_events(frame.iloc[:1500], agency_of, without_identifier=False,
                                    seed=1)
    features = [person_features(source_record_from_event(event)) for event in events]
    model, report = fit_scoring_model(features, random_pairs=50_000)
    assert report.expected_matches > 0
    for field in ("given_name", "family_name", "date_of_birth", "identifier"):
        assert model.weight(field, "exact") > 3
        assert model.weight(field, "different") < 0
    # The prior odds of two random records among 1500 put the threshold near log2(pairs).
    assert 5 < model.match_threshold < 20
