"""A batch of consumed messages, reduced to what must be written.

Pure: decoding is passed in as a function, so this runs in unit tests without Kafka or a
registry. The reduction keeps, per golden id, only the last change of the batch (an
earlier one would be overwritten in the same transaction anyway); it walks backwards past
changes that cannot be decoded or stored, sending each to the dead-letter list, so one bad
event never holds back the good ones nor the events of other keys. A change that is
superseded within its batch is never written and therefore never checked.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from schemas.dead_letters import DeadLetter
from schemas.entities import MATCH_DECISION
from sinks.records import DELETED, GoldenRows, RecordError, Row, golden_rows
from sinks.tables import ENTITY_TABLES, match_decision_row


@dataclass(frozen=True)
class Message:
    """One consumed Kafka message (only what the sink needs of it)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Rejection:
    """A message for the dead-letter topic and why; the letter is free of personal data."""

    message: Message
    letter: DeadLetter

    @classmethod
    def of(cls, message: Message, error: RecordError) -> Rejection:
        return cls(message, DeadLetter(error.reason, str(error)))


@dataclass
class PreparedBatch:
    changes: dict[str, list[GoldenRows]] = field(default_factory=dict)
    match_decisions: list[Row] = field(default_factory=list)
    # Where each written change came from, to dead-letter it if PostgreSQL refuses it.
    change_origins: dict[tuple[str, str], Message] = field(default_factory=dict)
    match_decision_origins: list[Message] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    # (topic, partition) -> the offset after the last message of the batch
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def change_count(self) -> int:
        return sum(len(changes) for changes in self.changes.values())


# The decoded value of a message (None for a tombstone); raises RecordError when the bytes
# cannot be decoded for good. Any other exception (registry down) propagates: the batch is
# retried rather than dead-lettered.
Decode = Callable[[Message, str], Mapping[str, Any] | None]


def golden_id_of(key: bytes | None) -> str:
    if key is None:
        raise RecordError("the message has no key; reconciled topics are keyed by golden id",
                          "bad_key")
    try:
        return str(uuid.UUID(key.decode("ascii")))
    except (UnicodeDecodeError, ValueError):
        raise RecordError("the message key is not a UUID; reconciled topics are keyed by"
                          " golden id", "bad_key") from None


def prepare_batch(
    messages: Iterable[Message], entity_of_topic: Mapping[str, str], decode: Decode
) -> PreparedBatch:
    """Reduce ``messages`` (in consumption order) to the rows to write and the rejects."""
    batch = PreparedBatch()
    latest: dict[tuple[str, str | bytes | None], list[Message]] = {}
    for message in messages:
        position = (message.topic, message.partition)
        batch.next_offsets[position] = max(
            batch.next_offsets.get(position, 0), message.offset + 1
        )
        entity = entity_of_topic[message.topic]
        if entity == MATCH_DECISION:
            _add_match_decision(batch, message, decode)
        else:
            latest.setdefault((entity, _grouping_key(message.key)), []).append(message)

    for (entity, _key), history in latest.items():
        table = ENTITY_TABLES[entity]
        last: tuple[Message, GoldenRows] | None = None
        for message in reversed(history):
            try:
                golden_id = golden_id_of(message.key)
                record = decode(message, entity)
                if record is not None:
                    _check_id(record, table.id_column, golden_id)
                rows = golden_rows(table, golden_id, record)
            except RecordError as error:
                batch.rejections.append(Rejection.of(message, error))
                continue
            if last is None:
                last = (message, rows)
                if rows.state != DELETED:
                    break
            else:
                # A tombstone after another change of the batch: the store must end as if
                # both had been applied one after the other (as smaller batches would), so
                # the tombstone carries that change's version and merge.
                last = (last[0], replace(last[1], golden_version=rows.golden_version,
                                         merged_into=rows.merged_into))
                break
        if last is not None:
            batch.changes.setdefault(entity, []).append(last[1])
            batch.change_origins[(entity, last[1].golden_id)] = last[0]
    return batch


def _grouping_key(key: bytes | None) -> str | bytes | None:
    # One golden id written in upper and lower case is still one record.
    try:
        return golden_id_of(key)
    except RecordError:
        return key


def _add_match_decision(batch: PreparedBatch, message: Message, decode: Decode) -> None:
    try:
        record = decode(message, MATCH_DECISION)
        if record is None:
            raise RecordError("the message has no value; match decisions are never deleted")
        batch.match_decisions.append(match_decision_row(record))
    except RecordError as error:
        batch.rejections.append(Rejection.of(message, error))
        return
    batch.match_decision_origins.append(message)


def _check_id(record: Mapping[str, Any], id_field: str, golden_id: str) -> None:
    value = record.get(id_field)
    if value is not None and str(value).lower() != golden_id:
        raise RecordError(
            f"field {id_field} differs from the message key; the resolver must key each golden"
            " record by its own id", "key_mismatch"
        )
