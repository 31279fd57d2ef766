"""The freshness histogram (pure): buckets, quantiles like Prometheus, rendering."""

from __future__ import annotations

import math

from deploy.operations.freshness import histogram_of, render_histogram


def test_values_land_in_the_first_bucket_whose_bound_is_not_below_them():
    histogram = histogram_of([0.2, 0.5, 0.7, 3.0, 100_000.0], buckets=(0.5, 1.0, 5.0))
    assert histogram.counts == [2, 1, 1, 1]
    assert histogram.total == 5


def test_negative_ages_from_agency_clocks_ahead_count_as_zero():
    assert histogram_of([-4.0], buckets=(1.0,)).counts == [1, 0]


def test_quantiles_interpolate_within_the_bucket():
    histogram = histogram_of([1.5] * 10, buckets=(1.0, 2.0))
    assert histogram.quantile(0.5) == 1.5
    assert histogram.quantile(1.0) == 2.0


def test_quantile_in_the_overflow_bucket_is_only_known_to_exceed_the_last_bound():
    histogram = histogram_of([10.0], buckets=(1.0, 2.0))
    assert histogram.quantile(0.5) == 2.0
    assert histogram_of([], buckets=(1.0,)).quantile(0.5) is None
    assert histogram_of([10.0], buckets=()).quantile(0.5) == math.inf


def test_json_buckets_are_cumulative_like_prometheus():
    summary = histogram_of([0.2, 3.0], buckets=(0.5, 5.0)).as_json()
    assert summary["buckets"] == [
        {"le": 0.5, "count": 1}, {"le": 5.0, "count": 2}, {"le": "+Inf", "count": 2},
    ]
    assert summary["changes"] == 2 and summary["mean_seconds"] == 1.6


def test_rendering_names_the_count_and_quantiles_or_says_nothing_was_seen():
    assert "no change became visible" in render_histogram(histogram_of([]), "freshness")
    text = render_histogram(histogram_of([0.3, 0.4, 7.0]), "freshness")
    assert text.startswith("freshness: 3 changes;")
    assert "0.5 s" in text and "10 s" in text
