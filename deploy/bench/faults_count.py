"""What ``tipsync bench faults`` counts at the end: what the producers published (read back
from the agency topics, by ingest's own rules), what the reconciled store holds, and the
clusters of an undisturbed run (``deploy.bench.faults`` explains the figures)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.client_config import ClientConfig

ENTITIES = ("person", "case", "report", "organisation", "location", "link")


# --------------------------------------------------------------------------- what was published


@dataclass
class Published:
    """Per entity, (agency_id, source_record_id) -> (latest accepted version, live)."""

    latest: dict[str, dict[tuple[str, str], tuple[int, bool]]]
    person_events: list[Any]  # the accepted person events, in topic order
    events: int
    dead_letters: int
    not_on_resolve_topic: int  # live person and link records ingest never forwarded
    # per entity and record, where its events lie on the agency topics: (topic, partition,
    # offset), in topic order; what a lost record's report names (no field of the record)
    places: dict[str, dict[tuple[str, str], list[tuple[str, int, int]]]] = field(
        default_factory=dict)


def read_topics(client: ClientConfig, topics: Iterable[str]) -> Iterable[Any]:
    """Every message of ``topics``, from the start to the end offsets of now."""
    import confluent_kafka
    from confluent_kafka.admin import AdminClient, OffsetSpec

    admin = AdminClient(client.librdkafka())
    metadata = admin.list_topics(timeout=30)
    partitions = [confluent_kafka.TopicPartition(topic, partition)
                  for topic in sorted(topics)
                  for partition in sorted(metadata.topics[topic].partitions)]
    if not partitions:
        return

    def offsets(spec: Any) -> dict[tuple[str, int], int]:
        futures = admin.list_offsets({tp: spec for tp in partitions}, request_timeout=30)
        return {(tp.topic, tp.partition): future.result().offset
                for tp, future in futures.items()}

    low, high = offsets(OffsetSpec.earliest()), offsets(OffsetSpec.latest())
    pending = {key for key in high if high[key] > low[key]}
    if not pending:
        return
    consumer = confluent_kafka.Consumer(client.librdkafka({
        "group.id": "tipsync-bench-faults-reader", "enable.auto.commit": False,
        "enable.partition.eof": False,
    }))
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, partition, low[(topic, partition)])
                         for topic, partition in sorted(pending)])
        while pending:
            message = consumer.poll(30)
            if message is None:
                raise RuntimeError(f"nothing more to read, still pending: {sorted(pending)[:5]}")
            if message.error():
                continue
            key = (message.topic() or "", message.partition() or 0)
            if key not in pending:
                continue
            if (message.offset() or 0) >= high[key] - 1:
                pending.discard(key)
            yield message
    finally:
        consumer.close()


def published_records(settings: Any) -> Published:
    from confluent_kafka.admin import AdminClient

    from schemas.registry import SchemaRegistry
    from schemas.serde import AvroDeserializer
    from schemas.topics import TOPICS
    from streams.ingest import Held, Verdict, check_event, judge, remember

    client = settings.client
    admin = AdminClient(client.librdkafka())
    names = admin.list_topics(timeout=30).topics
    agency_topics = [name for name in names if TOPICS.parse_agency(name) is not None]
    deserialize = AvroDeserializer(SchemaRegistry(client.registry()))
    held: dict[str, Held] = {}
    latest: dict[str, dict[tuple[str, str], tuple[int, bool]]] = defaultdict(dict)
    person_events = []
    places: dict[str, dict[tuple[str, str], list[tuple[str, int, int]]]] = defaultdict(
        lambda: defaultdict(list))
    events = 0
    for message in read_topics(client, agency_topics):
        parsed = TOPICS.parse_agency(message.topic())
        assert parsed is not None
        agency_id, entity = parsed
        events += 1
        event = check_event(agency_id, entity, message.key(),
                            deserialize(message.value()).record)
        key = event.held_key
        places[entity][(agency_id, event.source_record_id)].append(
            (message.topic(), message.partition(), message.offset()))
        verdict = judge(held.get(key), event.event_id, event.source_version)
        held[key] = remember(held.get(key), event.event_id, event.source_version)
        if verdict is not Verdict.ACCEPT:
            continue
        latest[entity][(agency_id, event.source_record_id)] = (
            event.source_version, event.op != "DELETE")
        if entity == "person":
            person_events.append(event)
    # which person and link records reached the resolve topic (ingest's forward)
    forwarded = {message.key().decode() for message in read_topics(
        client, [TOPICS.resolve]) if message.key() is not None}
    not_forwarded = sum(
        1 for entity in ("person", "link") for (agency_id, record_id), (_, alive)
        in latest.get(entity, {}).items()
        if alive and f"{entity}:{agency_id}:{record_id}" not in forwarded
    )
    dead_letters = 0
    for stage in ("ingest", "resolve", "sink"):
        topic = TOPICS.dlq(stage)
        if topic in names:
            dead_letters += sum(1 for _ in read_topics(client, [topic]))
    return Published(dict(latest), person_events, events, dead_letters, not_forwarded,
                     {entity: dict(records) for entity, records in places.items()})


# --------------------------------------------------------------------------- what was stored


def stored_records(connection: Any, entity: str) -> dict[tuple[str, str], tuple[int, bool]]:
    rows = connection.execute(
        f"select agency_id, source_record_id, source_version, not deleted "
        f"from reconciled.{entity}_source"
    ).fetchall()
    return {(agency, record): (int(version), bool(live))
            for agency, record, version, live in rows}


def double_counted(connection: Any) -> tuple[int, int]:
    """(source records counted by golden people beyond the live person_source rows, live
    source rows of any entity whose golden record does not exist)."""
    counted = connection.execute(
        "select coalesce(sum(source_count), 0) from reconciled.person").fetchone()[0]
    live = connection.execute(
        "select count(*) from reconciled.person_source where not deleted").fetchone()[0]
    orphans = 0
    for entity in ENTITIES:
        table = '"case"' if entity == "case" else entity
        orphans += connection.execute(
            f"select count(*) from reconciled.{entity}_source s where not s.deleted and not "
            f"exists (select 1 from reconciled.{table} g where g.{entity}_id = s.{entity}_id)"
        ).fetchone()[0]
    return max(0, int(counted) - int(live)), int(orphans)


def stored_clusters(connection: Any) -> set[frozenset[str]]:
    members: dict[str, set[str]] = defaultdict(set)
    for agency, record, person in connection.execute(
        "select agency_id, source_record_id, person_id::text from reconciled.person_source "
        "where not deleted"
    ).fetchall():
        members[person].add(f"{agency}:{record}")
    return {frozenset(keys) for keys in members.values()}


def reference_clusters(person_events: Iterable[Any]) -> set[frozenset[str]]:
    """The clusters of an undisturbed run: the stream app's resolve stage, in-process, fed
    the accepted person events (the rebuild path, ``ResolveStage.load``)."""
    from schemas.agencies import load_agencies
    from streams.resolve import Resolver
    from streams.resolve_stage import ResolveStage, trust_ranks

    stage = ResolveStage(lambda: Resolver(trust_ranks(load_agencies())))
    for event in person_events:
        stage.load(event)
    return {frozenset(keys) for keys in stage.resolver.clusters().values()}


# --------------------------------------------------------------------------- figures


LOST_PLACES_SHOWN = 20


def where(places: list[tuple[str, int, int]]) -> str:
    """``tip.agency.a.person[3]@17,40``: a record's events, by partition (topic order)."""
    by_partition: dict[tuple[str, int], list[int]] = defaultdict(list)
    for topic, partition, offset in places:
        by_partition[(topic, partition)].append(offset)
    return " ".join(f"{topic}[{partition}]@{','.join(map(str, offsets))}"
                    for (topic, partition), offsets in by_partition.items()) or "(no event)"


def compare(published: Published, stored: Mapping[str, Mapping[tuple[str, str], tuple[int, bool]]],
            clusters: set[frozenset[str]], reference: set[frozenset[str]]) -> dict[str, Any]:
    per_entity: dict[str, dict[str, int]] = {}
    lost_at: list[str] = []
    for entity in ENTITIES:
        expected = published.latest.get(entity, {})
        store = stored.get(entity, {})
        live = {key for key, (_, alive) in expected.items() if alive}
        lost_keys = [key for key in sorted(live) if store.get(key, (0, False))[1] is False
                     or store[key][0] < expected[key][0]]
        lost = len(lost_keys)
        undeleted_keys = [key for key, (_, alive) in sorted(expected.items())
                          if not alive and store.get(key, (0, False))[1]]
        undeleted = len(undeleted_keys)
        for key in lost_keys + undeleted_keys:
            lost_at.append(where(published.places.get(entity, {}).get(key, [])))
        unknown = sum(1 for key, (_, alive) in store.items() if alive and key not in expected)
        per_entity[entity] = {
            "published": len(live), "published_deleted": len(expected) - len(live),
            "stored": sum(1 for _, alive in store.values() if alive),
            "lost": lost + undeleted, "not_published": unknown,
        }
    differences = len(clusters ^ reference)
    return {
        "events_on_agency_topics": published.events,
        "published": sum(figure["published"] for figure in per_entity.values()),
        "stored": sum(figure["stored"] for figure in per_entity.values()),
        "lost": sum(figure["lost"] for figure in per_entity.values()),
        # where each lost record's events lie on the agency topics (the first few)
        "lost_at": lost_at[:LOST_PLACES_SHOWN],
        "not_published_but_stored": sum(f["not_published"] for f in per_entity.values()),
        "by_entity": per_entity,
        "golden_people": len(clusters), "reference_golden_people": len(reference),
        "cluster_differences": differences,
    }
