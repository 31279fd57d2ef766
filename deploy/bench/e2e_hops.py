"""Where a steady change's time goes: the hops between Kafka topics, from their timestamps.

Every message carries the time its producer handed it over (``CreateTime``): the agency's
publisher for the agency topic, ingest for the resolve topic, resolve for the person
mapping. For each change the steady phase published, the first resolve-topic message of the
same record at or after it, and the first mapping message at or after that, give ingest's
and resolve's share of its freshness; what is left of the freshness bench e2e prints is the
sink's (and PostgreSQL's). Read after the phase, from the topics themselves: nothing is
added to the pipeline while it is measured.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from schemas.client_config import ClientConfig
from schemas.topics import TOPICS, agency_topic

# Each topic is read from the first offset at or after the phase's start, to its end now.
READ_TIMEOUT_SECONDS = 60.0


def timestamps(client: ClientConfig, topic: str, since_ms: int) -> dict[bytes, list[int]]:
    """Key -> CreateTime of each message of ``topic`` from ``since_ms`` on, in offset order."""
    consumer = Consumer(client.librdkafka({"group.id": "tipsync-bench-e2e-hops",
                                           "enable.auto.commit": False}))
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = [TopicPartition(topic, number, since_ms)
                      for number in metadata.topics[topic].partitions]
        starts = consumer.offsets_for_times(partitions, timeout=10)
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in starts}
        wanted = [p for p in starts if 0 <= p.offset < ends[p.partition]]
        found: dict[bytes, list[int]] = defaultdict(list)
        if not wanted:
            return found
        consumer.assign(wanted)
        left = {p.partition for p in wanted}
        quiet_since = time.monotonic()
        while left:
            # consume() with a timeout returns when it has as many messages as asked or the
            # timeout passed: short waits, so the end of a topic is not waited out
            messages = consumer.consume(10_000, timeout=0.5)
            if not messages:
                if time.monotonic() - quiet_since > READ_TIMEOUT_SECONDS:
                    raise TimeoutError(f"{topic}: no message for {READ_TIMEOUT_SECONDS:.0f} s"
                                       " before its end")
                continue
            quiet_since = time.monotonic()
            for message in messages:
                if message.error() is not None:
                    continue
                key, offset, partition = message.key(), message.offset(), message.partition()
                if key is not None:
                    found[key].append(message.timestamp()[1])
                if offset is not None and partition is not None and offset + 1 >= ends[partition]:
                    left.discard(partition)
        return found
    finally:
        consumer.close()


def next_hop(sent: list[int], received: list[int]) -> list[int | None]:
    """For each time in ``sent``, the first time in ``received`` at or after it (None when
    there is none): when the next stage handed the same record's change on."""
    later = sorted(received)
    found: list[int | None] = []
    for moment in sent:
        index = bisect_left(later, moment)
        found.append(later[index] if index < len(later) else None)
    return found


def hop_latencies(client: ClientConfig, agency_id: str, since_ms: int) -> dict[str, list[int]]:
    """Milliseconds of each change of ``agency_id``'s person topic since ``since_ms`` spent
    in ingest (agency topic -> resolve topic) and in resolve (resolve topic -> mapping)."""
    agency = timestamps(client, agency_topic(agency_id, "person"), since_ms)
    resolve = timestamps(client, TOPICS.resolve, since_ms)
    mapping = timestamps(client, TOPICS.person_mapping, since_ms)
    return hops(agency, resolve, mapping)


def hops(agency: Mapping[bytes, list[int]], resolve: Mapping[bytes, list[int]],
         mapping: Mapping[bytes, list[int]]) -> dict[str, list[int]]:
    """Pure part of ``hop_latencies``. Keys: the agency topic's and the mapping's
    ``<agency>:<record>``, the resolve topic's ``person:<agency>:<record>``
    (docs/CONTRACT.md); a change that did not reach the mapping is left out."""
    ingest_ms: list[int] = []
    resolve_ms: list[int] = []
    for key, sent in agency.items():
        forwarded = next_hop(sent, resolve.get(b"person:" + key, []))
        resolved = next_hop([moment or 0 for moment in forwarded], mapping.get(key, []))
        for moment, at_resolve, at_mapping in zip(sent, forwarded, resolved, strict=True):
            if at_resolve is not None and at_mapping is not None:
                ingest_ms.append(at_resolve - moment)
                resolve_ms.append(at_mapping - at_resolve)
    return {"ingest": ingest_ms, "resolve": resolve_ms}


def summary(milliseconds: list[int], percentile: Any) -> dict[str, Any]:
    """count, p50 / p95 / p99 / max in seconds (``percentile``: bench e2e's)."""
    if not milliseconds:
        return {"count": 0}
    seconds = [value / 1000 for value in milliseconds]
    return {"count": len(seconds),
            **{f"p{rank}_seconds": round(percentile(seconds, rank), 3) for rank in (50, 95, 99)},
            "max_seconds": round(max(seconds), 3)}
