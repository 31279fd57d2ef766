"""Choosing the pipeline's groups and rendering the report for people (pure)."""

from __future__ import annotations

from deploy.cli.operations import render_table
from deploy.operations.lag import PartitionSample, evaluate_group
from deploy.operations.offsets import pipeline_group_names


def test_pipeline_groups_are_those_committing_on_tip_topics_plus_the_sinks():
    kafka_commits = {
        "tipsync-streams": [("tip.agency.customs.person", 0)],
        "someone-elses-app": [("orders", 0)],
        "never-committed": [],
    }
    assert pipeline_group_names(kafka_commits, ["tipsync-sink"]) == [
        "tipsync-sink", "tipsync-streams",
    ]


def test_pipeline_groups_can_be_narrowed_by_prefix():
    kafka_commits = {"tipsync-streams": [("tip.internal.person-source", 0)],
                     "test-123": [("tip.agency.immigration.case", 1)]}
    assert pipeline_group_names(kafka_commits, [], prefix="tipsync") == ["tipsync-streams"]


def test_table_shows_each_group_then_its_partitions_without_huge_lag_for_no_commit():
    report = evaluate_group(
        group="tipsync-sink", offsets_from="postgresql", state="STABLE", members=1,
        windows={("tip.reconciled.person", 0): [PartitionSample(10, 900, 895)],
                 ("tip.reconciled.person", 1): [PartitionSample(10, 1_000_000, None)]},
        log_start_offsets={("tip.reconciled.person", 1): 0},
        record_timestamps={("tip.reconciled.person", 0): 7.5},
        now=10,
    )
    table = render_table([report])
    lines = table.splitlines()
    assert lines[0].startswith("tipsync-sink  [NO_COMMIT]  lag 5 messages, 2.5 s;")
    assert "offsets in postgresql" in lines[0]
    assert "(1000000 pending)" in lines[3] and "NO_COMMIT" in lines[3]
    assert " 5 " in lines[2] and "2.5" in lines[2]


def test_table_says_when_no_group_was_found():
    assert "no consumer group of the pipeline was found" in render_table([])
