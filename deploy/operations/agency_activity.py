"""How active each agency is, from its topics alone: what ``tipsync monitor`` exports so an
alert can say "no change from agency X for longer than its usual gap".

Per agency topic ``tip.agency.<agency_id>.<entity>`` the monitor asks Kafka (ListOffsets, which
needs DESCRIBE only, the monitor's right) for the end offsets (how many messages the agency
has published: a counter, whose rate is the agency's throughput) and for the largest record
timestamp (``OffsetSpec.max_timestamp``: when the agency last published). Agency ids and
entities are the labels, never anything of a record. What "usual" is, Prometheus works out
from the history of these series (deploy/prometheus/alerts.yaml, TipsyncAgencySilent).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from deploy.operations.offsets import OperationsError
from schemas.topics import TopicNames


@dataclass(frozen=True)
class AgencyActivity:
    agency: str
    entity: str
    messages: int  # sum of the topic's end offsets: every message ever published there
    last_message_at: float | None  # seconds since the epoch; None: the topic is empty


def summarise(
    names: TopicNames,
    end_offsets: Mapping[tuple[str, int], int],
    max_timestamps_ms: Mapping[tuple[str, int], int],
) -> list[AgencyActivity]:
    """Per agency topic: its messages and latest record time (pure: from ListOffsets'
    answers; a partition with no record answers timestamp -1)."""
    topics: dict[str, tuple[int, int]] = {}
    for (topic, partition), end in end_offsets.items():
        messages, latest = topics.get(topic, (0, -1))
        topics[topic] = (messages + end,
                         max(latest, max_timestamps_ms.get((topic, partition), -1)))
    activity = []
    for topic, (messages, latest) in sorted(topics.items()):
        parsed = names.parse_agency(topic)
        if parsed is None:
            continue
        activity.append(AgencyActivity(parsed.agency_id, parsed.entity, messages,
                                       latest / 1000.0 if latest >= 0 else None))
    return activity


def _list(admin: AdminClient, partitions: Iterable[TopicPartition], spec: OffsetSpec,
          timeout: float) -> dict[tuple[str, int], tuple[int, int]]:
    request = {partition: spec for partition in partitions}
    if not request:
        return {}
    found: dict[tuple[str, int], tuple[int, int]] = {}
    for partition, future in admin.list_offsets(request, request_timeout=timeout).items():
        try:
            result = future.result()
        except KafkaException:
            continue  # a topic deleted meanwhile: it simply stops being exported
        found[(partition.topic, partition.partition)] = (result.offset, result.timestamp)
    return found


def survey_agencies(admin: AdminClient, names: TopicNames, timeout: float = 10.0
                    ) -> list[AgencyActivity]:
    """One look at every agency topic under ``names``' root."""
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as error:
        raise OperationsError(
            f"Kafka did not list its topics ({error.args[0].str()}); check `tipsync stack"
            " status` and the monitor's client file"
        ) from None
    partitions = [
        TopicPartition(topic, partition)
        for topic, described in metadata.topics.items()
        if names.parse_agency(topic) is not None and described.error is None
        for partition in described.partitions
    ]
    ends = _list(admin, partitions, OffsetSpec.latest(), timeout)
    latest = _list(admin, partitions, OffsetSpec.max_timestamp(), timeout)
    return summarise(names, {key: offset for key, (offset, _) in ends.items()},
                     {key: timestamp for key, (_, timestamp) in latest.items()})


def families(activity: Iterable[AgencyActivity]) -> Iterator[object]:
    """The Prometheus metric families of one survey (names in metric_names.OPERATIONS)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    messages = CounterMetricFamily(
        "tipsync_agency_messages", "Messages an agency has published on its topic (end offsets).",
        labels=("agency", "entity"),
    )
    last = GaugeMetricFamily(
        "tipsync_agency_last_message_timestamp_seconds",
        "When the agency last published on its topic (largest record timestamp).",
        labels=("agency", "entity"),
    )
    for item in activity:
        messages.add_metric([item.agency, item.entity], float(item.messages))
        if item.last_message_at is not None:
            last.add_metric([item.agency, item.entity], item.last_message_at)
    yield from (messages, last)
