"""Erasure and retention through the pipeline: the I/O shell of ``tipsync erase`` and
``tipsync retention enforce`` (the rules are ``deploy.operations.erasure_plan``'s).

For each source record, in this order (docs/SECURITY.md "Erasure and retention"):

1. a row of ``reconciled.erasure_log`` (who, when, which keys: ids only), committed first so
   an erasure that stops half way is still on record;
2. a DELETE event on the record's agency topic, written by the administrator, with a
   ``source_version`` above the highest the store or the topic holds, in the partition of the
   record's messages: ingest accepts it; for people and links resolve removes the record and
   republishes the golden person without it; the sink deletes the rows;
3. waits until the stream workers have committed past the DELETE on the agency topic and,
   for people and links, past it on the resolve topic, and the store no longer lists the
   record;
4. deletes the store's match decisions naming the record (ids and scores, history);
5. tombstones (the key, no value) on the agency topic, the person-mapping topic (people),
   the resolve topic (people and links:
   the worker then writes a snapshot without the record and deletes the older ones,
   ``streams.snapshot_schedule``) and the three dead-letter topics, each in every partition
   (the stages' producers partition differently; a tombstone where the key never was costs
   a few bytes for ``delete.retention.ms``);
6. for people: a ``RECORD_ERASED`` message on every agency feed (``tip.outbound.<id>``)
   holding messages about the record's golden person (keyed by its id, in their partitions):
   feeds are not compacted (every alert must reach the agency), so the earlier messages stay
   until the feed's retention and the agency's side deletes what it stored from them;
7. the log row completed, and the report: where copies were removed, where one may remain
   and until when (``copy_deadline`` from each topic's configuration, ``feed_deadline``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import psycopg
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource

from deploy.operations.erasure_plan import (
    CopyDeadline,
    ErasureTarget,
    copy_deadline,
    delete_event,
    delete_version,
    erased_notice,
    feed_deadline,
)
from deploy.operations.topic_reader import TopicReadError, read_to_end
from schemas.agencies import load_agencies
from schemas.client_config import ClientConfig
from schemas.entities import FEED_MESSAGE
from schemas.errors import WireFormatError
from schemas.registry import SchemaRegistry
from schemas.serde import AvroDeserializer, AvroSerializer
from schemas.topics import TopicNames
from sinks.tables import ENTITY_TABLES
from streams.ingest import RESOLVED_ENTITIES

POLL_SECONDS = 1.0


class ErasureError(Exception):
    """An erasure that cannot be done or finished; the message says which and what to do."""


@dataclass
class ErasureReport:
    """What one erasure did: the records, the log rows, where copies were removed and where
    one may remain until when (ids and topic names only)."""

    erased: list[ErasureTarget] = field(default_factory=list)
    unknown: list[ErasureTarget] = field(default_factory=list)  # neither store nor topic
    log_ids: list[int] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    remaining: list[CopyDeadline] = field(default_factory=list)
    seconds: float = 0.0  # how long the erasure took, waits included


# --- which records ------------------------------------------------------------------------


def _source_table(entity: str) -> tuple[str, str]:
    table = ENTITY_TABLES.get(entity)
    if table is None:
        raise ErasureError(
            f"entity '{entity}' is not one of {', '.join(ENTITY_TABLES)}; name the entity"
            " of the record's agency topic with --entity"
        )
    return f'reconciled."{table.table}_source"', table.id_column


def record_targets(database_url: str, entity: str, agency_id: str,
                   source_record_id: str) -> list[ErasureTarget]:
    """The one record named (not in the store: its topic may still hold it)."""
    table, id_column = _source_table(entity)
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            f"SELECT {id_column}::text, source_version FROM {table}"  # noqa: S608 - identifiers
            " WHERE agency_id = %s AND source_record_id = %s",
            (agency_id, source_record_id),
        ).fetchone()
    golden, version = row if row else (None, None)
    return [ErasureTarget(entity, agency_id, source_record_id, golden, version)]


def consent_targets(database_url: str, agency_id: str, consent_ref: str) -> list[ErasureTarget]:
    """Every live record of ``agency_id``, of every entity, that the agency shared under the
    consent ``consent_ref`` (the consent was withdrawn). The reference is the agency's own:
    another agency's record with the same reference is not named."""
    targets: list[ErasureTarget] = []
    with psycopg.connect(database_url) as connection:
        for entity in ENTITY_TABLES:
            table, id_column = _source_table(entity)
            rows = connection.execute(
                f"SELECT source_record_id, {id_column}::text, source_version"  # noqa: S608
                f" FROM {table} WHERE agency_id = %s AND consent_ref = %s AND NOT deleted"
                " ORDER BY source_record_id", (agency_id, consent_ref),
            ).fetchall()
            targets += [ErasureTarget(entity, agency_id, *row) for row in rows]
    if not targets:
        raise ErasureError(
            f"agency '{agency_id}' has no record in the store shared under consent"
            f" '{consent_ref[:80]}' (erased already, or another reference); the data"
            " protection officer finds them with: SELECT agency_id, source_record_id,"
            " consent_ref FROM reconciled.person_source WHERE consent_ref IS NOT NULL"
        )
    return targets


def person_targets(database_url: str, person_id: str) -> list[ErasureTarget]:
    """Every source record of a golden person (a merged id stands for its survivor), and
    the links that end at the person (that a person is a victim in a case is about them)."""
    with psycopg.connect(database_url) as connection:
        live = connection.execute(
            "SELECT reconciled.resolve_person_id(%s::uuid)::text", (person_id,)
        ).fetchone()
        golden = live[0] if live else person_id
        people = connection.execute(
            "SELECT agency_id, source_record_id, person_id::text, source_version"
            " FROM reconciled.person_source WHERE person_id = %s::uuid"
            " ORDER BY agency_id, source_record_id", (golden,),
        ).fetchall()
        links = connection.execute(
            "SELECT s.agency_id, s.source_record_id, s.link_id::text, s.source_version"
            " FROM reconciled.link_source AS s JOIN reconciled.link AS l USING (link_id)"
            " WHERE (l.from_entity = 'PERSON' AND l.from_id = %s::uuid)"
            " OR (l.to_entity = 'PERSON' AND l.to_id = %s::uuid)"
            " ORDER BY s.agency_id, s.source_record_id", (golden, golden),
        ).fetchall()
    if not people:
        raise ErasureError(
            f"golden person {person_id} has no source record in the store (erased already,"
            " or not a person id); check it with `tipsync search person` or erase a record"
            " with --agency ID --record RID --entity person"
        )
    return ([ErasureTarget("person", *row) for row in people]
            + [ErasureTarget("link", *row) for row in links])


def expired_targets(database_url: str, today: date) -> list[ErasureTarget]:
    """Every live source record whose ``retention_until`` is before ``today``."""
    found: list[ErasureTarget] = []
    with psycopg.connect(database_url) as connection:
        for entity in ENTITY_TABLES:
            table, id_column = _source_table(entity)
            rows = connection.execute(
                f"SELECT agency_id, source_record_id, {id_column}::text,"  # noqa: S608
                f" source_version FROM {table}"
                " WHERE retention_until < %s AND NOT deleted"
                " ORDER BY agency_id, source_record_id", (today,),
            ).fetchall()
            found += [ErasureTarget(entity, *row) for row in rows]
    return found


# --- the erasure ----------------------------------------------------------------------------


class Eraser:
    def __init__(self, client: ClientConfig, database_url: str, topics: TopicNames,
                 operator: str, wait_seconds: float = 300.0) -> None:
        self.client = client
        self.database_url = database_url
        self.topics = topics
        self.operator = operator
        self.wait_seconds = wait_seconds
        self._registry = SchemaRegistry(client.registry())
        self._admin = AdminClient(client.librdkafka())

    def erase(self, targets: Sequence[ErasureTarget], reason: str,
              requested_person: str | None = None) -> ErasureReport:
        report = ErasureReport()
        found = self._scan_agency_topics(targets)
        planned: list[tuple[ErasureTarget, int, set[int]]] = []
        now_ms = int(time.time() * 1000)
        for target in targets:
            versions, partitions = found.get((target.entity, target.source_key), ([], set()))
            version = delete_version(target.store_version, versions, now_ms)
            if version is None:
                report.unknown.append(target)
            else:
                planned.append((target, version, partitions))
        if not planned:
            return report
        report.log_ids = self._log(planned, reason, requested_person)
        delivered = self._publish_deletes(planned)
        self._wait_for_stream(delivered, any(t.entity in RESOLVED_ENTITIES for t, *_ in planned))
        self._wait_for_store([target for target, *_ in planned])
        report.removed.append(
            f"store: {len(planned)} source record(s) deleted by the sink"
            f" ({self._forget_match_decisions([t for t, *_ in planned])} match decision row(s)"
            " naming them deleted)"
        )
        tombstoned = self._tombstone([target for target, *_ in planned])
        report.removed += [f"{topic}: tombstone written ({count} key(s))"
                           for topic, count in sorted(tombstoned.items())]
        if any(t.entity in RESOLVED_ENTITIES for t, *_ in planned):
            report.removed.append(
                "resolve snapshots: the worker writes one without the record(s) at the"
                " resolve tombstone and deletes the older ones"
            )
        noticed = self._notify_feeds([target for target, *_ in planned])
        report.removed += [f"{topic}: RECORD_ERASED sent about {len(people)} person(s)"
                           for topic, (people, _) in sorted(noticed.items())]
        self._complete(report.log_ids)
        report.erased = [target for target, *_ in planned]
        report.remaining = self._deadlines(
            [*tombstoned, *(self.topics.reconciled(e) for e in {t.entity for t in report.erased})]
        )
        configs = self._configs(noticed)
        now = datetime.now(UTC)
        report.remaining += [feed_deadline(topic, configs[topic], now, messages)
                             for topic, (_, messages) in sorted(noticed.items())]
        return report

    # --- Kafka: versions, deletes, tombstones

    def _scan_agency_topics(
        self, targets: Iterable[ErasureTarget]
    ) -> dict[tuple[str, str], tuple[list[int], set[int]]]:
        """For each (entity, source key): the versions of its events on its agency topic and
        the partitions they are in (one, unless the agency's partitioner changed)."""
        wanted: dict[str, set[bytes]] = {}
        for target in targets:
            topic = self.topics.agency(target.agency_id, target.entity)
            wanted.setdefault(topic, set()).add(target.source_key.encode())
        deserialize = AvroDeserializer(self._registry)
        found: dict[tuple[str, str], tuple[list[int], set[int]]] = {}
        consumer = Consumer(self.client.librdkafka({
            "group.id": f"{self.topics.internal_prefix}erase", "enable.auto.commit": False,
            "enable.partition.eof": True,
        }))
        try:
            for topic, keys in wanted.items():
                parsed = self.topics.parse_agency(topic)
                assert parsed is not None
                for message in _read_topic(consumer, topic):
                    key, value = message.key(), message.value()
                    if key is None or key not in keys or value is None:
                        continue
                    try:
                        record = deserialize(value, expected=parsed.entity).record
                    except WireFormatError:
                        continue  # ingest refused it: it holds no version
                    versions, partitions = found.setdefault(
                        (parsed.entity, key.decode()), ([], set()))
                    versions.append(int(record["source_version"]))
                    partitions.add(message.partition() or 0)
        finally:
            consumer.close()
        return found

    def _producer(self) -> Producer:
        return Producer(self.client.librdkafka({"enable.idempotence": True, "acks": "all"}))

    def _publish_deletes(
        self, planned: Sequence[tuple[ErasureTarget, int, set[int]]]
    ) -> list[tuple[str, int, int]]:
        """Publish the DELETEs; their (topic, partition, offset)."""
        producer = self._producer()
        delivered: list[tuple[str, int, int]] = []
        failures: list[str] = []

        def on_delivery(error: KafkaError | None, message: object) -> None:
            if error is not None:
                failures.append(error.str())
            else:
                delivered.append((message.topic(), message.partition(),  # type: ignore[attr-defined]
                                  message.offset()))  # type: ignore[attr-defined]

        serializers: dict[str, AvroSerializer] = {}
        now = datetime.now(UTC)
        for target, version, partitions in planned:
            serialize = serializers.get(target.entity)
            if serialize is None:
                serialize = serializers[target.entity] = AvroSerializer(self._registry,
                                                                        target.entity)
            topic = self.topics.agency(target.agency_id, target.entity)
            # the partition of the record's messages (-1: the partitioner's choice)
            producer.produce(topic, key=target.source_key.encode(),
                             value=serialize(delete_event(target, version, now)),
                             partition=min(partitions) if partitions else -1,
                             on_delivery=on_delivery)
        remaining = producer.flush(60)
        if remaining or failures:
            raise ErasureError(
                f"{remaining or len(failures)} erasing DELETE(s) were not delivered"
                f" ({failures[0] if failures else 'timed out'}); the erasure log holds the"
                " request: run the same command again once Kafka takes writes"
            )
        return delivered

    def _tombstone(self, targets: Sequence[ErasureTarget]) -> dict[str, int]:
        """Tombstones under each record's keys, in every partition; topic -> keys."""
        by_topic: dict[str, set[str]] = {}
        for target in targets:
            by_topic.setdefault(self.topics.agency(target.agency_id, target.entity),
                                set()).add(target.source_key)
            by_topic.setdefault(self.topics.dlq("ingest"), set()).add(target.source_key)
            if target.entity == "person":  # which golden person the record maps to
                by_topic.setdefault(self.topics.person_mapping, set()).add(target.source_key)
            if target.entity in RESOLVED_ENTITIES:
                by_topic.setdefault(self.topics.resolve, set()).add(target.held_key)
                by_topic.setdefault(self.topics.dlq("resolve"), set()).add(target.held_key)
            if target.golden_id is not None:
                by_topic.setdefault(self.topics.dlq("sink"), set()).add(target.golden_id)
        metadata = self._admin.list_topics(timeout=30)
        producer = self._producer()
        failures: list[str] = []

        def on_delivery(error: KafkaError | None, _message: object) -> None:
            if error is not None:
                failures.append(error.str())

        written: dict[str, int] = {}
        for topic, keys in by_topic.items():
            described = metadata.topics.get(topic)
            if described is None or described.error is not None:
                continue  # never created (e.g. no dead letter of that stage ever)
            for key in sorted(keys):
                for partition in sorted(described.partitions):
                    producer.produce(topic, key=key.encode(), value=None, partition=partition,
                                     on_delivery=on_delivery)
            written[topic] = len(keys)
        remaining = producer.flush(60)
        if remaining or failures:
            raise ErasureError(
                f"{remaining or len(failures)} tombstone(s) were not delivered"
                f" ({failures[0] if failures else 'timed out'}); the records are out of the"
                " store: run the same command again to write the tombstones"
            )
        return written

    def _committed(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        request = ConsumerGroupTopicPartitions(self.topics.stream_group, partitions)
        result = self._admin.list_consumer_group_offsets([request])[
            self.topics.stream_group].result()
        return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions or []}

    def _wait_for_stream(self, delivered: Sequence[tuple[str, int, int]],
                         resolved: bool) -> None:
        """Until ingest has committed past every DELETE and, when people or links are
        erased, resolve past everything ingest had written to its topic by then."""
        after: dict[tuple[str, int], int] = {}
        for topic, partition, offset in delivered:
            after[(topic, partition)] = max(offset, after.get((topic, partition), -1))
        self._wait_until(
            lambda: all(self._committed([TopicPartition(t, p)]).get((t, p), -1) > offset
                        for (t, p), offset in after.items()),
            "the stream workers' ingest has not committed past the erasing DELETE(s) on"
            f" {', '.join(sorted({t for t, _ in after}))}",
        )
        if not resolved:
            return
        high = self._resolve_end()
        resolve = self.topics.resolve
        self._wait_until(
            lambda: self._committed([TopicPartition(resolve, 0)]).get((resolve, 0), -1) >= high,
            f"resolve has not committed past offset {high} of {resolve}",
        )

    def _resolve_end(self) -> int:
        consumer = Consumer(self.client.librdkafka({
            "group.id": f"{self.topics.internal_prefix}erase", "enable.auto.commit": False}))
        try:
            _, high = consumer.get_watermark_offsets(TopicPartition(self.topics.resolve, 0),
                                                     timeout=30)
        finally:
            consumer.close()
        return int(high)

    def _wait_until(self, done: object, what: str) -> None:
        deadline = time.monotonic() + self.wait_seconds
        while not done():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise ErasureError(
                    f"{what} within {self.wait_seconds:.0f} s: is `tipsync stream` (and"
                    " `tipsync sink`) running? The erasure log holds the request; run the same"
                    " command again once they run (a second DELETE with a higher version is"
                    " harmless)"
                )
            time.sleep(POLL_SECONDS)

    def _configs(self, topics: Iterable[str]) -> dict[str, dict[str, str]]:
        resources = [ConfigResource(ConfigResource.Type.TOPIC, name)
                     for name in sorted(set(topics))]
        if not resources:
            return {}
        return {
            resource.name: {name: entry.value for name, entry in future.result().items()
                            if entry.value is not None}
            for resource, future in self._admin.describe_configs(resources).items()
        }

    def _deadlines(self, topics: Iterable[str]) -> list[CopyDeadline]:
        now = datetime.now(UTC)
        return sorted((copy_deadline(topic, config, now)
                       for topic, config in self._configs(topics).items()),
                      key=lambda deadline: deadline.topic)

    # --- the agencies' feeds

    def _notify_feeds(self, targets: Sequence[ErasureTarget]) -> dict[str, tuple[set[str], int]]:
        """Send ``RECORD_ERASED`` on every agency feed that holds messages about the golden
        person of an erased person record (keyed by its id), in the partitions holding them;
        feed topic -> (the people, how many earlier messages about them it holds)."""
        erased: dict[str, list[ErasureTarget]] = {}
        for target in targets:
            if target.entity == "person" and target.golden_id is not None:
                erased.setdefault(target.golden_id, []).append(target)
        if not erased:
            return {}
        keys = {person_id.encode() for person_id in erased}
        held: dict[str, dict[str, set[int]]] = {}  # agency -> person -> partitions
        counts: dict[str, int] = {}  # agency -> messages about the people
        consumer = Consumer(self.client.librdkafka({
            "group.id": f"{self.topics.internal_prefix}erase", "enable.auto.commit": False,
            "enable.partition.eof": True,
        }))
        try:
            for agency_id in sorted(load_agencies()):
                topic = self.topics.outbound(agency_id)
                for message in _read_topic(consumer, topic):
                    key = message.key()
                    if key in keys and message.value() is not None:
                        people = held.setdefault(agency_id, {})
                        people.setdefault(key.decode(), set()).add(message.partition() or 0)
                        counts[agency_id] = counts.get(agency_id, 0) + 1
        finally:
            consumer.close()
        if not held:
            return {}
        versions = self._golden_versions(list(erased))
        serialize = AvroSerializer(self._registry, FEED_MESSAGE)
        producer = self._producer()
        failures: list[str] = []

        def on_delivery(error: KafkaError | None, _message: object) -> None:
            if error is not None:
                failures.append(error.str())

        now = datetime.now(UTC)
        for recipient, people in held.items():
            topic = self.topics.outbound(recipient)
            for person_id, partitions in people.items():
                notice = erased_notice(
                    recipient, person_id, versions.get(person_id, 0),
                    [t.source_record_id for t in erased[person_id] if t.agency_id == recipient],
                    now)
                for partition in sorted(partitions):
                    producer.produce(topic, key=person_id.encode(), value=serialize(notice),
                                     partition=partition, on_delivery=on_delivery)
        remaining = producer.flush(60)
        if remaining or failures:
            raise ErasureError(
                f"{remaining or len(failures)} RECORD_ERASED feed message(s) were not delivered"
                f" ({failures[0] if failures else 'timed out'}); the records are out of the"
                " store: run the same command again to tell the agencies"
            )
        return {self.topics.outbound(agency_id): (set(people), counts[agency_id])
                for agency_id, people in held.items()}

    def _golden_versions(self, people: Sequence[str]) -> dict[str, int]:
        """The version below which feed messages about each golden person may hold erased
        values: its version in the store now when it lives on (the erasure has passed it, and
        the stream's message of that version shows it without the records), one above its
        last when it is gone (a tombstone keeps the last live version: every message goes)."""
        with psycopg.connect(self.database_url) as connection:
            rows = connection.execute(
                "SELECT golden_id::text, golden_version, state = 'live'"
                " FROM reconciled.golden_record_state"
                " WHERE entity = 'person' AND golden_id = ANY(%s::uuid[])", (list(people),),
            ).fetchall()
        return {person_id: int(version) + (0 if live else 1)
                for person_id, version, live in rows}

    # --- PostgreSQL: the log, the store

    def _log(self, planned: Sequence[tuple[ErasureTarget, int, set[int]]], reason: str,
             requested_person: str | None) -> list[int]:
        with psycopg.connect(self.database_url) as connection:
            ids = [
                connection.execute(
                    "INSERT INTO reconciled.erasure_log (operator, reason, entity, agency_id,"
                    " source_record_id, golden_id, requested_person, delete_version)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING erasure_id",
                    (self.operator, reason, target.entity, target.agency_id,
                     target.source_record_id, target.golden_id, requested_person, version),
                ).fetchone()[0]  # type: ignore[index]
                for target, version, _ in planned
            ]
        return ids

    def _complete(self, log_ids: Sequence[int]) -> None:
        with psycopg.connect(self.database_url) as connection:
            connection.execute(
                "UPDATE reconciled.erasure_log SET completed_at = now()"
                " WHERE erasure_id = ANY(%s)", (list(log_ids),))

    def _still_stored(self, targets: Sequence[ErasureTarget]) -> int:
        count = 0
        with psycopg.connect(self.database_url) as connection:
            for target in targets:
                table, _ = _source_table(target.entity)
                row = connection.execute(
                    f"SELECT count(*) FROM {table}"  # noqa: S608 - identifiers only
                    " WHERE agency_id = %s AND source_record_id = %s",
                    (target.agency_id, target.source_record_id),
                ).fetchone()
                count += int(row[0]) if row else 0
        return count

    def _wait_for_store(self, targets: Sequence[ErasureTarget]) -> None:
        self._wait_until(lambda: self._still_stored(targets) == 0,
                         "the sink has not removed the erased record(s) from the store")

    def _forget_match_decisions(self, targets: Sequence[ErasureTarget]) -> int:
        people = [(t.agency_id, t.source_record_id) for t in targets if t.entity == "person"]
        if not people:
            return 0
        deleted = 0
        with psycopg.connect(self.database_url) as connection:
            for agency_id, record_id in people:
                deleted += connection.execute(
                    "DELETE FROM reconciled.match_decision WHERE (left_agency_id = %s AND"
                    " left_source_record_id = %s) OR (right_agency_id = %s AND"
                    " right_source_record_id = %s)", (agency_id, record_id, agency_id, record_id),
                ).rowcount
        return deleted


def _read_topic(consumer: Consumer, topic: str) -> Iterator[Message]:
    """Every message of ``topic`` now (up to each partition's end), assigned by hand; nothing
    when the topic does not exist."""
    described = consumer.list_topics(topic, timeout=30).topics.get(topic)
    if described is None or described.error is not None:
        return
    try:
        yield from read_to_end(consumer, topic, described.partitions, 30)
    except TopicReadError as error:
        raise ErasureError(f"{error}; check `tipsync stack status`, then erase again") from None

