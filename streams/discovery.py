"""Finding the agency topics on the broker, for ingest's subscription.

faust's ``pattern=`` subscription silently subscribes to nothing (faust-streaming issue #62,
``# XXX pattern does not work`` in its aiokafka driver), so the app finds the agency topics
itself: at start and then every ``discovery_interval_seconds`` it lists the broker's topics,
and adds the new ones matching the agency pattern to the ingest subscription.

Only agencies of the agency registry (``schemas.agencies``, read when the worker starts) are
read: a topic matching the pattern whose agency is not registered is skipped, and logged once
(its name only), so creating ``tip.agency.<anyone>.person`` on the broker gives nobody a way
in. A new agency needs its registry entry, a (rolling) restart of the workers, and its topics
(``tipsync topics create``).

Ingest's table is partitioned like its input, so every agency topic it reads must have the
same partition count: the count most agency topics have is chosen, and a topic with another
count is skipped with an error saying how to fix it. Nothing here knows faust: the app hands
over the subscription list it gave faust and a callable telling faust that the list grew.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka.admin import AdminClient

from schemas import config
from schemas.client_config import ClientConfig
from schemas.topics import TopicNames, TopicSettings

log = logging.getLogger("tipsync.streams")


def agency_topics_on_broker(bootstrap: str | ClientConfig, topics: TopicNames) -> dict[str, int]:
    """Agency topic -> partition count, for the topics the broker has now."""
    metadata = AdminClient(ClientConfig.of(bootstrap).librdkafka()).list_topics(timeout=15)
    return {
        name: len(topic.partitions)
        for name, topic in metadata.topics.items()
        if topics.parse_agency(name) is not None
    }


@dataclass
class RegisteredAgencies:
    """Keeps the agency topics of registered agencies; logs each other topic once."""

    registered: frozenset[str]
    topics: TopicNames
    skipped: set[str] = field(default_factory=set)

    def __call__(self, found: Mapping[str, int]) -> dict[str, int]:
        kept: dict[str, int] = {}
        for name, count in sorted(found.items()):
            parsed = self.topics.parse_agency(name)
            if parsed is not None and parsed.agency_id in self.registered:
                kept[name] = count
            elif name not in self.skipped:
                self.skipped.add(name)
                log.error(
                    "ingest skips topic %s: its agency is not in the agency registry; add the"
                    " agency to the registry (%s) and restart the workers, or delete the topic",
                    name, config.AGENCIES,
                )
        return kept


def common_partition_count(found: Mapping[str, int]) -> int:
    """The partition count most agency topics have (the larger one on a tie); with no agency
    topic yet, the count ``tipsync topics create`` gives new ones (``config.PARTITIONS``)."""
    if not found:
        return TopicSettings.from_environment().partitions
    counts: dict[int, int] = {}
    for count in found.values():
        counts[count] = counts.get(count, 0) + 1
    return max(counts, key=lambda count: (counts[count], count))


def fitting_topics(found: Mapping[str, int], partitions: int) -> list[str]:
    """The agency topics ingest can read: those with ``partitions`` partitions, sorted."""
    return sorted(name for name, count in found.items() if count == partitions)


def warn_misfits(found: Mapping[str, int], partitions: int) -> None:
    for name, count in sorted(found.items()):
        if count != partitions:
            log.error(
                "agency topic %s has %d partitions, the other agency topics %d; ingest "
                "cannot keep its table partitioned like it, so it skips the topic: "
                "recreate it with %d partitions (%s)",
                name, count, partitions, partitions, config.PARTITIONS,
            )


@dataclass
class AgencyDiscovery:
    """Grows ``subscribed`` (the very list ingest's faust channel reads its topics from) with
    the agency topics created since the last look."""

    list_topics: Callable[[], Mapping[str, int]]  # agency topic -> partition count, now
    partitions: int
    subscribed: list[str] = field(default_factory=list)
    # called after ``subscribed`` grew (the app: faust's conductor resubscribes on its next
    # turn), and again at every look while the consumer is not subscribed to all of it
    on_new: Callable[[], None] = lambda: None
    # the topics the consumer was last subscribed to (the app: faust's conductor's index);
    # None: not checked
    consumer_topics: Callable[[], Collection[str]] | None = None

    async def discover(self) -> list[str]:
        """Subscribe ingest to agency topics created since the last look; returns them.

        faust drops a subscription change flagged while the app is rebalancing (its
        conductor's ``_subscriber`` clears the event instead of resubscribing, and a
        rebalance lasts until the tables are recovered), so a topic found then would never be
        read: the flag is raised again at every look until the consumer's subscription holds
        every topic of ``subscribed``."""
        found = await asyncio.to_thread(self.list_topics)
        new = sorted(
            name for name, count in found.items()
            if count == self.partitions and name not in self.subscribed
        )
        if new:
            log.warning("ingest subscribes to new agency topics: %s", ", ".join(new))
            self.subscribed.extend(new)
            self.on_new()
        elif self.consumer_topics is not None:
            consuming = self.consumer_topics()
            waiting = [name for name in self.subscribed if name not in consuming]
            if waiting:
                log.warning("ingest is not yet subscribed to %s; asking again",
                            ", ".join(waiting))
                self.on_new()
        return new


class SubscribeBetweenRebalances:
    """faust's subscription change, made only while the app is not rebalancing.

    faust's conductor (``Conductor._subscriber``, faust 0.15.3) looks whether the app is
    rebalancing when a change is flagged, then sleeps (``_resubscribe_sleep_lock_seconds``)
    and subscribes without looking again. When a rebalance began during that sleep (another
    worker subscribed to the same new agency topic first), the subscription is replaced in the
    middle of the table recovery, aiokafka's assignment is gone under it, and the recovery's
    seek fails (``assert self._subscription.assignment is not None`` in aiokafka's
    ``SubscriptionState``): the worker crashes (seen in
    ``tests/integration/test_stream_workers.py``: a worker of ``tipsync stream --workers 2``
    exited 1). The subscription change waits here until the rebalance is over (faust's
    recovery done, ``App.rebalancing`` false), then goes through."""

    def __init__(self, subscribe: Callable[[Iterable[str]], Awaitable[None]],
                 rebalancing: Callable[[], bool], pause_seconds: float = 0.2) -> None:
        self._subscribe = subscribe
        self._rebalancing = rebalancing
        self._pause_seconds = pause_seconds
        self.waited = 0  # subscription changes that waited for a rebalance to end

    async def __call__(self, topics: Iterable[str]) -> None:
        if self._rebalancing():
            self.waited += 1
            while self._rebalancing():
                await asyncio.sleep(self._pause_seconds)
        await self._subscribe(topics)

    @classmethod
    def install(cls, consumer: Any, rebalancing: Callable[[], bool]) -> None:
        """Replace ``consumer.subscribe`` (faust's, which its conductor calls)."""
        consumer.subscribe = cls(consumer.subscribe, rebalancing)
