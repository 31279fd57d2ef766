"""Topic names and the topic plan."""

from __future__ import annotations

import pytest

from schemas.topics import (
    TOPICS,
    TopicNames,
    TopicSettings,
    agency_topic,
    parse_agency_topic,
    parse_source_key,
    source_key,
    topic_plan,
)


def test_topic_names() -> None:
    assert agency_topic("police-ctu", "person") == "tip.agency.police-ctu.person"
    assert TOPICS.reconciled("person") == "tip.reconciled.person"
    assert TOPICS.reconciled("match_decision") == "tip.reconciled.match_decision"
    assert TOPICS.dlq("ingest") == "tip.dlq.ingest"
    assert TOPICS.internal("resolve.blocks") == "tip.internal.resolve.blocks"
    assert TOPICS.resolve == "tip.internal.resolve"
    assert TOPICS.stream_group == "tip.internal.stream"
    assert TOPICS.agency_prefix("customs") == "tip.agency.customs."


def test_a_topic_root_replaces_tip_in_every_name() -> None:
    names = TopicNames("t1")
    assert names.agency("customs", "case") == "t1.agency.customs.case"
    assert names.parse_agency("t1.agency.customs.case") == ("customs", "case")
    assert names.parse_agency("tip.agency.customs.case") is None
    assert names.reconciled("person") == "t1.reconciled.person"
    assert names.dlq("sink") == "t1.dlq.sink"
    assert names.resolve == "t1.internal.resolve"
    assert names.sink_group == "t1.sink"
    with pytest.raises(ValueError, match="topic root"):
        TopicNames("bad root")


def test_agency_topic_refuses_bad_parts() -> None:
    with pytest.raises(ValueError, match="entity 'vehicle'"):
        agency_topic("police-ctu", "vehicle")
    with pytest.raises(ValueError, match="upper-case"):
        agency_topic("Police", "person")
    with pytest.raises(ValueError, match="'archive' is not a pipeline stage"):
        TOPICS.dlq("archive")


def test_pattern_matches_agency_topics_only() -> None:
    pattern = TOPICS.agency_pattern
    assert pattern.match("tip.agency.hope-line-ngo.report")
    assert not pattern.match("tip.reconciled.person")
    assert not pattern.match("tip.agency.police-ctu.person.extra")
    assert parse_agency_topic("tip.agency.customs.organisation") == ("customs", "organisation")
    with pytest.raises(ValueError, match="is not an agency topic"):
        parse_agency_topic("tip.dlq.ingest")


def test_source_key_round_trips_and_keeps_colons_in_record_ids() -> None:
    key = source_key("immigration", "IMM:2026:7")
    assert parse_source_key(key.encode()) == ("immigration", "IMM:2026:7")
    with pytest.raises(ValueError, match="is not '<agency_id>:<source_record_id>'"):
        parse_source_key("no-separator")


def test_plan_compacts_reconciled_topics_and_compacts_and_retains_agency_topics() -> None:
    plan = {spec.name: spec for spec in topic_plan(["police-ctu", "customs"])}
    # no tip.dlq.produce: producers keep rejects at the agency; + the stewardship decisions
    # + one feed per agency
    assert len(plan) == 2 * 6 + 7 + 3 + 1 + 2
    assert plan["tip.outbound.customs"].config == {
        "cleanup.policy": "delete", "retention.ms": str(30 * 24 * 3600 * 1000)}
    assert plan["tip.reconciled.person"].config["cleanup.policy"] == "compact"
    # compacted too, so that an erasure's tombstone removes a record's messages; every
    # compacted topic rolls its active segment within a day (Kafka never compacts it)
    erasable = {
        "cleanup.policy": "compact,delete",
        "retention.ms": str(30 * 24 * 3600 * 1000),
        "delete.retention.ms": str(24 * 3600 * 1000),
        "max.compaction.lag.ms": str(24 * 3600 * 1000),
    }
    assert plan["tip.agency.customs.link"].config == erasable
    assert plan["tip.dlq.ingest"].config == erasable
    assert plan["tip.reconciled.person"].config["max.compaction.lag.ms"] == str(24 * 3600 * 1000)
    assert plan["tip.dlq.sink"].partitions == 6
    decisions = plan["tip.stewardship.decisions"]
    assert decisions.partitions == 1
    assert decisions.config["cleanup.policy"] == "compact"
    assert decisions.config["retention.ms"] == "-1"  # kept forever
    assert TopicNames("t1").stewardship_decisions == "t1.stewardship.decisions"
    extra = topic_plan([], internal_compacted=["ingest-latest-changelog"])
    assert extra[-1].name == "tip.internal.ingest-latest-changelog"
    assert extra[-1].config["cleanup.policy"] == "compact"


def test_sizing_comes_from_the_environment() -> None:
    settings = TopicSettings.from_environment({"TIPSYNC_PARTITIONS": "3"})
    assert settings.partitions == 3
    # unset: the cluster's default.replication.factor (Kafka's -1), a number when set
    assert settings.replication_factor == -1
    explicit = TopicSettings.from_environment({"TIPSYNC_REPLICATION_FACTOR": "3"})
    assert explicit.replication_factor == 3
    with pytest.raises(ValueError, match="TIPSYNC_PARTITIONS='six' is not a positive whole"):
        TopicSettings.from_environment({"TIPSYNC_PARTITIONS": "six"})
