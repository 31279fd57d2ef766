"""``tipsync model fit`` and ``tipsync model show``: the resolver's scoring model as a file.

``fit`` reads the person records the stream app resolves — the latest event of every agency's
person record on the compacted ``<prefix>.internal.resolve`` topic, decoded with the
contract's deserializer as the stream app decodes them — fits m, u and the thresholds to them
without labels (``streams.resolve.training``, EM as Splink does it) and writes a model file
(``streams.resolve.model_file``: probabilities and counts only, no personal data). ``show``
prints a file. Rolling a model out is ``tipsync stream --model PATH`` (docs/STREAMS.md).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.config import Settings, load_settings

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


def read_person_records(settings: Settings, prefix: str) -> ResolveTopicContent:
    """Every agency person record's latest event on ``<prefix>.internal.resolve``."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from schemas.errors import WireFormatError
    from schemas.registry import SchemaRegistry
    from schemas.serde import AvroDeserializer
    from streams.dlq import Rejected
    from streams.ingest import check_event
    from streams.resolve.records import InvalidPersonRecord, source_record_from_event
    from streams.resolve_stage import PERSON, person_fields

    topic = f"{prefix}.internal.resolve"
    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap, "group.id": f"{prefix}.model-fit",
        "enable.auto.commit": False, "enable.partition.eof": True,
    })
    latest: dict[bytes, bytes | None] = {}
    messages = 0
    try:
        metadata = consumer.list_topics(topic, timeout=15).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise ModelCommandError(
                f"topic {topic} does not exist on {settings.kafka_bootstrap}; start the stream "
                "app (tipsync stream) and let records arrive first, or check --prefix"
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
                    raise ModelCommandError(f"reading {topic} failed: {error}")
                key = message.key() or b""
                # Only person records: links and the stream app's model-change markers share
                # the topic.
                if key.startswith(f"{PERSON}:".encode()):
                    latest[key] = message.value()
                messages += 1
    finally:
        consumer.close()

    registry = SchemaRegistry(settings.registry_url)
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


class ModelCommandError(Exception):
    """What stops ``tipsync model``: a sentence for the operator."""


def fit_model_file(records: list[dict[str, Any]], *, minimum_records: int, source: str,
                   random_pairs: int = 300_000) -> Any:
    """The fitted ``ModelFile`` of these source records (pure: no I/O)."""
    from streams.resolve.model_file import Fitted, ModelFile
    from streams.resolve.records import person_features
    from streams.resolve.training import fit_scoring_model

    if len(records) < minimum_records:
        raise ModelCommandError(
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


# --------------------------------------------------------------------------- commands


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    model = subparsers.add_parser(
        "model",
        help="fit the resolver's scoring model to the records held, or show a model file",
        description="The resolver's scoring model (m and u per field and level, thresholds) "
        "as a file: fit it to the person records the stream app holds, show it, and roll it "
        "out with `tipsync stream --model PATH` (docs/STREAMS.md).",
    )
    commands = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    fit = commands.add_parser(
        "fit", help="fit m, u and thresholds by EM to the records on the resolve topic",
    )
    fit.add_argument("--out", type=Path, required=True, help="the model file to write")
    fit.add_argument("--prefix", default="tip",
                     help="topic prefix instead of 'tip' (reads <prefix>.internal.resolve)")
    fit.add_argument("--min-records", type=int, default=MINIMUM_RECORDS,
                     help=f"refuse to fit on fewer person records (default {MINIMUM_RECORDS})")
    fit.add_argument("--random-pairs", type=int, default=300_000,
                     help="random pairs that estimate u (default 300000)")
    fit.set_defaults(func=run_fit)
    show = commands.add_parser("show", help="print a model file's thresholds and weights")
    show.add_argument("path", type=Path)
    show.set_defaults(func=run_show)
    model.set_defaults(func=lambda args: (model.print_help(), 2)[1])


def run_fit(args: argparse.Namespace) -> int:
    from streams.resolve.model_file import describe, write_model_file

    settings = load_settings()
    topic = f"{args.prefix}.internal.resolve"
    try:
        content = read_person_records(settings, args.prefix)
        model_file = fit_model_file(content.records, minimum_records=args.min_records,
                                    source=topic, random_pairs=args.random_pairs)
    except ModelCommandError as error:
        print(f"tipsync model fit: {error}", file=sys.stderr)
        return 1
    write_model_file(args.out, model_file)
    print(f"read {content.messages} messages of {topic}: {len(content.records)} person "
          f"records, {content.deleted} deleted, {content.undecodable} undecodable (skipped)")
    for line in describe(model_file):
        print(line)
    print(f"wrote {args.out}; roll it out with `tipsync stream --model {args.out}`")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from streams.resolve.model_file import ModelFileError, describe, read_model_file

    try:
        model_file = read_model_file(args.path)
    except ModelFileError as error:
        print(f"tipsync model show: {error}", file=sys.stderr)
        return 1
    for line in describe(model_file):
        print(line)
    return 0
