"""The demo's accuracy figure: pairwise precision and recall against the generator's truth."""

from __future__ import annotations

import pytest

from deploy.demo.run import pairwise_accuracy


def test_identical_clusterings_score_one() -> None:
    truth = {("a", "1"): "p1", ("b", "1"): "p1", ("c", "1"): "p2"}
    predicted = {("a", "1"): "g9", ("b", "1"): "g9", ("c", "1"): "g7"}
    assert pairwise_accuracy(predicted, truth) == {
        "records": 3, "precision": 1.0, "recall": 1.0, "f1": 1.0
    }


def test_a_missed_match_lowers_recall_and_a_false_merge_lowers_precision() -> None:
    truth = {("a", "1"): "p1", ("b", "1"): "p1", ("c", "1"): "p1", ("d", "1"): "p2"}
    # a+b found, c missed (recall 1/3); c wrongly merged with d (precision 1/2)
    predicted = {("a", "1"): "g1", ("b", "1"): "g1", ("c", "1"): "g2", ("d", "1"): "g2"}
    result = pairwise_accuracy(predicted, truth)
    assert result["precision"] == pytest.approx(0.5)
    assert result["recall"] == pytest.approx(1 / 3)
    assert result["f1"] == pytest.approx(0.4)


def test_records_missing_on_either_side_are_left_out() -> None:
    truth = {("a", "1"): "p1", ("b", "1"): "p1", ("bad", "row"): "p3"}
    predicted = {("a", "1"): "g1", ("b", "1"): "g1", ("live", "x"): "g5"}
    assert pairwise_accuracy(predicted, truth)["records"] == 2
