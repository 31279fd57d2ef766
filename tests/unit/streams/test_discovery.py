"""Agency topic discovery without a broker: which partition count ingest follows, which
topics it subscribes to at start and which ones a later look adds. Nothing running."""

from __future__ import annotations

import asyncio
import logging

import pytest

from schemas.topics import TopicNames
from streams.discovery import (
    AgencyDiscovery,
    common_partition_count,
    fitting_topics,
    warn_misfits,
)

TOPICS = TopicNames("tdisc")
POLICE_PERSON = TOPICS.agency("police-ctu", "person")
POLICE_CASE = TOPICS.agency("police-ctu", "case")
CUSTOMS_PERSON = TOPICS.agency("customs", "person")


def test_the_partition_count_most_agency_topics_have_is_chosen() -> None:
    found = {POLICE_PERSON: 6, POLICE_CASE: 6, CUSTOMS_PERSON: 3}
    assert common_partition_count(found) == 6
    assert fitting_topics(found, 6) == sorted([POLICE_PERSON, POLICE_CASE])


def test_on_a_tie_the_larger_partition_count_is_chosen() -> None:
    assert common_partition_count({POLICE_PERSON: 3, CUSTOMS_PERSON: 12}) == 12


def test_without_agency_topics_the_configured_partition_count_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIPSYNC_PARTITIONS", "4")
    assert common_partition_count({}) == 4


def test_a_topic_with_another_partition_count_is_reported_with_the_fix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="tipsync.streams"):
        warn_misfits({POLICE_PERSON: 6, CUSTOMS_PERSON: 3}, 6)
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert CUSTOMS_PERSON in message and "recreate it with 6 partitions" in message


def test_a_later_look_adds_only_new_topics_with_the_partition_count_in_place() -> None:
    on_broker = {POLICE_PERSON: 6}
    subscribed = fitting_topics(on_broker, 6)
    flagged: list[int] = []
    discovery = AgencyDiscovery(lambda: dict(on_broker), 6, subscribed,
                                on_new=lambda: flagged.append(1))

    assert asyncio.run(discovery.discover()) == []
    assert flagged == []

    on_broker.update({POLICE_CASE: 6, CUSTOMS_PERSON: 2})
    assert asyncio.run(discovery.discover()) == [POLICE_CASE]
    # the very list handed over grew (faust's channel reads it), and faust was told once
    assert discovery.subscribed is subscribed
    assert subscribed == [POLICE_PERSON, POLICE_CASE]
    assert flagged == [1]

    assert asyncio.run(discovery.discover()) == []
    assert flagged == [1]


def test_only_registered_agencies_topics_are_kept_and_others_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from streams.discovery import RegisteredAgencies

    intruder = TOPICS.agency("nobody-registered", "person")
    registered = RegisteredAgencies(frozenset({"police-ctu", "customs"}), TOPICS)
    found = {POLICE_PERSON: 6, CUSTOMS_PERSON: 6, intruder: 6, "tdisc.reconciled.person": 6}
    with caplog.at_level(logging.ERROR, logger="tipsync.streams"):
        assert registered(found) == {POLICE_PERSON: 6, CUSTOMS_PERSON: 6}
        assert registered(found) == {POLICE_PERSON: 6, CUSTOMS_PERSON: 6}
    skipped = [record.getMessage() for record in caplog.records if intruder in
               record.getMessage()]
    assert len(skipped) == 1  # once, not at every look
    assert "not in the agency registry" in skipped[0]


def test_discovery_through_the_registry_never_subscribes_an_unregistered_agency() -> None:
    from streams.discovery import RegisteredAgencies

    intruder = TOPICS.agency("nobody-registered", "person")
    on_broker = {POLICE_PERSON: 6}
    registered = RegisteredAgencies(frozenset({"police-ctu", "customs"}), TOPICS)
    subscribed = fitting_topics(registered(on_broker), 6)
    discovery = AgencyDiscovery(lambda: registered(on_broker), 6, subscribed)
    on_broker.update({intruder: 6, CUSTOMS_PERSON: 6})
    assert asyncio.run(discovery.discover()) == [CUSTOMS_PERSON]
    assert intruder not in subscribed


class Conductor:
    """faust 0.15.3's conductor as discovery meets it (``faust/transport/conductor.py``,
    ``Conductor._subscriber``): a change flagged while the app is rebalancing is cleared, not
    acted on; otherwise the consumer is subscribed to the channel's topics."""

    def __init__(self, channel: list[str]) -> None:
        self.channel = channel
        self.subscribed: dict[str, set[str]] = {name: set() for name in channel}
        self.rebalancing = False

    def flag_changes(self) -> None:
        if not self.rebalancing:
            self.subscribed = {name: set() for name in self.channel}


def test_a_new_topic_found_during_a_rebalance_is_asked_for_again_until_subscribed() -> None:
    """test_stream_workers missed a new agency's case in 1 run of 6: the topic was found while
    the group rebalanced (a second worker joining), faust dropped the flag, and ingest never
    subscribed to the topic."""
    on_broker = {POLICE_PERSON: 6}
    subscribed = fitting_topics(on_broker, 6)
    conductor = Conductor(subscribed)
    discovery = AgencyDiscovery(lambda: dict(on_broker), 6, subscribed,
                                on_new=conductor.flag_changes,
                                consumer_topics=lambda: conductor.subscribed)
    conductor.rebalancing = True
    on_broker[CUSTOMS_PERSON] = 6
    assert asyncio.run(discovery.discover()) == [CUSTOMS_PERSON]
    assert CUSTOMS_PERSON not in conductor.subscribed  # dropped by faust
    asyncio.run(discovery.discover())  # still rebalancing: asked again, dropped again
    conductor.rebalancing = False
    assert asyncio.run(discovery.discover()) == []
    assert set(conductor.subscribed) == {POLICE_PERSON, CUSTOMS_PERSON}


def test_a_subscription_change_waits_until_the_rebalance_is_over() -> None:
    """faust's conductor subscribes after a sleep without looking again whether a rebalance
    began meanwhile; replaced in the middle of the table recovery, the subscription took the
    assignment from under the recovery's seek and the worker crashed
    (``SubscribeBetweenRebalances``)."""
    from streams.discovery import SubscribeBetweenRebalances

    looks = {"left": 3}  # the app says it is rebalancing at the first three looks
    subscribed: list[tuple[list[str], int]] = []

    async def subscribe(topics: list[str]) -> None:
        subscribed.append((list(topics), looks["left"]))

    def is_rebalancing() -> bool:
        looks["left"] = max(looks["left"] - 1, -1)
        return looks["left"] >= 0

    between = SubscribeBetweenRebalances(subscribe, is_rebalancing, pause_seconds=0)
    asyncio.run(between([POLICE_CASE, CUSTOMS_PERSON]))
    assert subscribed == [([POLICE_CASE, CUSTOMS_PERSON], -1)]  # only once it was over
    assert between.waited == 1
    asyncio.run(between([POLICE_CASE]))  # not rebalancing: at once
    assert between.waited == 1 and len(subscribed) == 2


def test_the_subscription_faust_calls_is_replaced() -> None:
    from streams.discovery import SubscribeBetweenRebalances

    class FaustConsumer:
        def __init__(self) -> None:
            self.topics: list[str] = []

        async def subscribe(self, topics: list[str]) -> None:
            self.topics = list(topics)

    consumer = FaustConsumer()
    SubscribeBetweenRebalances.install(consumer, lambda: False)
    assert isinstance(consumer.subscribe, SubscribeBetweenRebalances)
    asyncio.run(consumer.subscribe([POLICE_CASE]))
    assert consumer.topics == [POLICE_CASE]
