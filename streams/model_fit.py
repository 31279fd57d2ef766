"""Fitting the resolver's scoring model to the people held (what ``tipsync model fit`` does).

It reads the person records the stream app resolves — the latest event of every agency's
person record on the compacted ``<prefix>.internal.resolve`` topic, decoded with the
contract's deserializer as the stream app decodes them — fits m, u and the thresholds to them
without labels (``streams.resolve.training``, EM as Splink does it) and writes a model file
(``streams.resolve.model_file``: probabilities and counts only, no personal data). Rolling a
model out is ``tipsync stream --model PATH`` (docs/STREAMS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.config import Settings
from schemas.topics import TopicNames

# Fewer records than this give weights that follow chance rather than the agencies' data (a
# few hundred true pairs are needed for every level's m to move off its prior).
MINIMUM_RECORDS = 1000


@dataclass(frozen=True)
class ResolveTopicContent:
    """The person records held on the resolve topic, and what was left out."""

    records: list[dict[str, Any]]  # source records, as the resolver stores them
    messages: int
    deleted: int
    undecodable: int


def read_person_records(settings: Settings, topics: TopicNames) -> ResolveTopicContent:
    """Every agency person record's latest event on the resolve topic."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from schemas.dead_letters import Rejected
    from schemas.errors import WireFormatError
    from schemas.registry import SchemaRegistry
    from schemas.serde import AvroDeserializer
    from streams.ingest import check_event
    from streams.resolve.records import InvalidPersonRecord, source_record_from_event
    from streams.resolve_stage import PERSON, person_fields

    topic = topics.resolve
    consumer = Consumer(settings.client.librdkafka({
        "group.id": topics.internal("model-fit"),
        "enable.auto.commit": False, "enable.partition.eof": True,
    }))
    latest: dict[bytes, bytes | None] = {}
    messages = 0
    try:
        metadata = consumer.list_topics(topic, timeout=15).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise ModelFitError(
                f"topic {topic} does not exist on {settings.kafka_bootstrap}; start the stream "
                "app (tipsync stream) and let records arrive first, or check --topic-root"
            )
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=15)
        if high > low:
            consumer.assign([TopicPartition(topic, 0, low)])
            while True:
                message = consumer.poll(5.0)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        break
                    raise ModelFitError(f"reading {topic} failed: {error}")
                key = message.key() or b""
                # Only person records: links and the stream app's model-change markers share
                # the topic.
                if key.startswith(f"{PERSON}:".encode()):
                    latest[key] = message.value()
                messages += 1
    finally:
        consumer.close()

    registry = SchemaRegistry(settings.client.registry())
    deserializer = AvroDeserializer(registry)
    records: list[dict[str, Any]] = []
    deleted = undecodable = 0
    try:
        for key, value in latest.items():
            _, agency_id, source_record_id = key.decode().split(":", 2)
            try:
                if value is None:
                    raise Rejected("undecodable", "a tombstone")
                decoded = deserializer(value, expected=PERSON)
                event = check_event(agency_id, PERSON, f"{agency_id}:{source_record_id}".encode(),
                                    decoded.record)
                if event.op == "DELETE":
                    deleted += 1
                    continue
                records.append(source_record_from_event(person_fields(event)))
            except (WireFormatError, Rejected, InvalidPersonRecord):
                # the stream app sent it to the dead-letter topic: it resolves nothing either
                undecodable += 1
    finally:
        registry.close()
    return ResolveTopicContent(records, messages, deleted, undecodable)


class ModelFitError(Exception):
    """What stops a fit: a sentence for the operator."""


def fit_model_file(records: list[dict[str, Any]], *, minimum_records: int, source: str,
                   random_pairs: int = 300_000) -> Any:
    """The fitted ``ModelFile`` of these source records (pure: no I/O)."""
    from streams.resolve.model_file import Fitted, ModelFile
    from streams.resolve.records import person_features
    from streams.resolve.training import fit_scoring_model

    if len(records) < minimum_records:
        raise ModelFitError(
            f"{source} holds {len(records)} person records; fitting needs at least "
            f"{minimum_records} (fewer give weights that follow chance, not the agencies' "
            "data): keep the default weights until more records have arrived, or lower "
            "--min-records"
        )
    features = [person_features(record) for record in records]
    model, report = fit_scoring_model(features, random_pairs=random_pairs)
    fitted = Fitted(
        records=report.records, candidate_pairs=report.candidate_pairs,
        random_pairs=report.random_pairs, expected_matches=round(report.expected_matches, 3),
        iterations=report.iterations,
        fitted_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
    )
    return ModelFile(model, fitted)
