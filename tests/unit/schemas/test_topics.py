"""Topic names and the topic plan."""

from __future__ import annotations

import re

import pytest

from schemas.topics import (
    AGENCY_TOPIC_PATTERN,
    TopicSettings,
    agency_topic,
    dlq_topic,
    internal_topic,
    parse_agency_topic,
    parse_source_key,
    reconciled_topic,
    source_key,
    topic_plan,
)


def test_topic_names() -> None:
    assert agency_topic("police-ctu", "person") == "tip.agency.police-ctu.person"
    assert reconciled_topic("person") == "tip.reconciled.person"
    assert reconciled_topic("match_decision") == "tip.reconciled.match_decision"
    assert dlq_topic("ingest") == "tip.dlq.ingest"
    assert internal_topic("resolve.blocks") == "tip.internal.resolve.blocks"


def test_agency_topic_refuses_bad_parts() -> None:
    with pytest.raises(ValueError, match="entity 'vehicle'"):
        agency_topic("police-ctu", "vehicle")
    with pytest.raises(ValueError, match="upper-case"):
        agency_topic("Police", "person")
    with pytest.raises(ValueError, match="'archive' is not a pipeline stage"):
        dlq_topic("archive")


def test_pattern_matches_agency_topics_only() -> None:
    pattern = re.compile(AGENCY_TOPIC_PATTERN)
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


def test_plan_compacts_reconciled_topics_and_retains_agency_topics() -> None:
    plan = {spec.name: spec for spec in topic_plan(["police-ctu", "customs"])}
    assert len(plan) == 2 * 6 + 7 + 4
    assert plan["tip.reconciled.person"].config["cleanup.policy"] == "compact"
    assert plan["tip.agency.customs.link"].config == {
        "cleanup.policy": "delete",
        "retention.ms": str(30 * 24 * 3600 * 1000),
    }
    assert plan["tip.dlq.sink"].partitions == 6
    extra = topic_plan([], internal_compacted=["ingest-latest-changelog"])
    assert extra[-1].name == "tip.internal.ingest-latest-changelog"
    assert extra[-1].config["cleanup.policy"] == "compact"


def test_sizing_comes_from_the_environment() -> None:
    settings = TopicSettings.from_environment({"TIPSYNC_PARTITIONS": "3"})
    assert settings.partitions == 3 and settings.replication_factor == 1
    with pytest.raises(ValueError, match="TIPSYNC_PARTITIONS='six' is not a positive whole"):
        TopicSettings.from_environment({"TIPSYNC_PARTITIONS": "six"})
