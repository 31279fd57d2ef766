"""The lag history file: window per partition, pruning, a damaged file set aside."""

from __future__ import annotations

import json
from pathlib import Path

from deploy.operations.history import (
    append_samples,
    history_from_json,
    history_to_json,
    load_history,
    prune_history,
    save_history,
)
from deploy.operations.lag import PartitionSample


def test_append_keeps_the_last_samples_per_partition():
    history: dict = {}
    for second in range(5):
        history = append_samples(
            history, "g", {("t", 0): PartitionSample(second, 10 + second, 10)}, keep=3
        )
    assert [sample.observed_at for sample in history["g"][("t", 0)]] == [2, 3, 4]


def test_append_does_not_change_the_history_it_was_given():
    original = append_samples({}, "g", {("t", 0): PartitionSample(1, 1, 1)}, keep=3)
    append_samples(original, "g", {("t", 0): PartitionSample(2, 2, 2)}, keep=3)
    assert len(original["g"][("t", 0)]) == 1


def test_prune_drops_partitions_and_groups_not_seen_for_a_while():
    history = {
        "old": {("t", 0): [PartitionSample(0, 1, 1)]},
        "mixed": {("t", 0): [PartitionSample(0, 1, 1)], ("t", 1): [PartitionSample(90, 1, 1)]},
    }
    pruned = prune_history(history, now=100, max_age_seconds=50)
    assert pruned == {"mixed": {("t", 1): [PartitionSample(90, 1, 1)]}}


def test_json_round_trip_keeps_missing_commits(tmp_path: Path):
    history = {"g": {("tip.agency.customs.person", 2): [PartitionSample(1.5, 7, None),
                                                        PartitionSample(2.5, 8, 3)]}}
    assert history_from_json(json.loads(json.dumps(history_to_json(history)))) == history
    path = tmp_path / "operations" / "lag-history.json"
    save_history(path, history)
    assert load_history(path) == (history, None)


def test_a_damaged_history_is_set_aside_with_a_warning(tmp_path: Path):
    path = tmp_path / "lag-history.json"
    path.write_text("{not json", encoding="utf-8")
    history, warning = load_history(path)
    assert history == {}
    assert warning is not None and "moved to" in warning and str(path) in warning
    assert (tmp_path / "lag-history.damaged.json").exists()


def test_a_missing_history_is_simply_empty(tmp_path: Path):
    assert load_history(tmp_path / "absent.json") == ({}, None)
