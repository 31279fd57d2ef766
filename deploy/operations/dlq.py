"""Dead letters as an operator works with them: list, show, replay (``tipsync dlq``).

The pure part: what a dead letter looks like to the operator, its ID, which letters a
command picks, and where a replay publishes each one. Reading and publishing are in
``dlq_kafka``, the audit in ``dlq_audit``.

A dead letter's **ID** is ``<stage>:<partition>:<offset>`` of its place on ``tip.dlq.<stage>``
(e.g. ``ingest:2:17``): stable for as long as the letter exists, and made of ids only. The
message key (``<agency_id>:<source_record_id>``) is never shown or logged by ``list`` and
``show``: a source record id points at a person, as a metric label or a log line must not.

A **replay** re-publishes a letter's key and value bytes, unchanged, to the topic and
partition it was read from (its ``tipsync.source_topic`` and ``source_partition`` headers:
an agency's other changes of the record are in that partition, in order, whatever the
partitioner of the producer that wrote them), which must be an input of its stage under the
command's topic root: an agency topic for ``ingest``, the resolve topic for ``resolve``, a
reconciled topic for ``sink``. The stages are idempotent (ingest drops an event_id it has
seen and a source_version it holds; the sink keeps the newest golden_version), so a letter
replayed twice changes nothing the second time; a replay still skips the letters the audit
shows replayed already (``--again`` replays them too), so that letters whose cause is not
fixed do not come back, doubled, on every run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from schemas.dead_letters import (
    DETAIL_HEADER,
    FAILED_AT_HEADER,
    REASON_HEADER,
    REASONS,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
    read_dead_letter_headers,
)
from schemas.entities import RECONCILED_OUTPUTS
from schemas.topics import DLQ_STAGES, TopicNames

_ID: Final = re.compile(rf"^({'|'.join(DLQ_STAGES)}):(\d+):(\d+)$")
# the key dead_letter_key gives a message that had none (schemas/dead_letters.py)
NO_KEY_PREFIX: Final = b"no-key:"


class DeadLetterError(Exception):
    """A dead-letter command cannot do what it was asked; the message says why and what to
    do."""


@dataclass(frozen=True, order=True)
class DeadLetterId:
    stage: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.stage}:{self.partition}:{self.offset}"


def parse_dead_letter_id(text: str) -> DeadLetterId:
    """``ingest:2:17`` -> DeadLetterId; DeadLetterError naming the expected shape."""
    match = _ID.match(text.strip())
    if not match:
        raise DeadLetterError(
            f"'{text}' is not a dead-letter ID (expected <stage>:<partition>:<offset> with"
            f" stage one of {', '.join(DLQ_STAGES)}, e.g. ingest:0:12; `tipsync dlq list`"
            " shows them)"
        )
    return DeadLetterId(match.group(1), int(match.group(2)), int(match.group(3)))


@dataclass(frozen=True)
class Message:
    """One message of a dead-letter topic as Kafka returned it."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class DeadLetterEntry:
    """What ``list`` and ``show`` print of a dead letter: ids, sizes and the headers (which
    carry no personal data by the format's rule), never the key or the value."""

    id: DeadLetterId
    reason: str
    detail: str
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    failed_at: str
    value_bytes: int
    had_key: bool
    message: Message

    @property
    def stage(self) -> str:
        return self.id.stage

    def as_json(self) -> dict[str, object]:
        return {
            "id": str(self.id), "stage": self.stage, "reason": self.reason,
            "detail": self.detail, "source_topic": self.source_topic,
            "source_partition": self.source_partition, "source_offset": self.source_offset,
            "failed_at": self.failed_at, "value_bytes": self.value_bytes,
            "had_key": self.had_key,
        }


def _number(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def entry_of(stage: str, message: Message) -> DeadLetterEntry:
    """The operator's view of one message of ``tip.dlq.<stage>``. A message without the
    format's headers (written by hand, or by something else) is shown with reason
    ``unknown`` rather than skipped: nothing on a dead-letter topic is silent."""
    headers = read_dead_letter_headers(message.headers)
    key = message.key
    return DeadLetterEntry(
        id=DeadLetterId(stage, message.partition, message.offset),
        reason=headers.get(REASON_HEADER, "unknown"),
        detail=headers.get(DETAIL_HEADER, "no tipsync.detail header: not written by a stage"),
        source_topic=headers.get(SOURCE_TOPIC_HEADER, ""),
        source_partition=_number(headers.get(SOURCE_PARTITION_HEADER)),
        source_offset=_number(headers.get(SOURCE_OFFSET_HEADER)),
        failed_at=headers.get(FAILED_AT_HEADER, ""),
        value_bytes=len(message.value or b""),
        had_key=key is not None and not key.startswith(NO_KEY_PREFIX),
        message=message,
    )


def check_reason(reason: str | None) -> str | None:
    if reason is not None and reason not in REASONS:
        raise DeadLetterError(
            f"'{reason}' is not a dead-letter reason (expected one of {', '.join(REASONS)};"
            " docs/CONTRACT.md explains each)"
        )
    return reason


def select(entries: Iterable[DeadLetterEntry], reason: str | None = None) -> list[DeadLetterEntry]:
    """The entries with this reason (all without one), in topic order."""
    return sorted((entry for entry in entries if reason is None or entry.reason == reason),
                  key=lambda entry: entry.id)


def replay_target(entry: DeadLetterEntry, names: TopicNames) -> str:
    """The topic a replay publishes ``entry`` to: the one it was read from, when that is an
    input of its stage under ``names``' root; DeadLetterError saying why not otherwise."""
    topic = entry.source_topic
    stage = entry.stage
    if not entry.had_key:
        raise DeadLetterError(
            f"dead letter {entry.id} cannot be replayed: the message had no key, and every"
            " topic of the pipeline needs one; the agency must publish the record again"
        )
    inputs = {
        "ingest": names.parse_agency(topic) is not None,
        "resolve": topic == names.resolve,
        "sink": topic in {names.reconciled(output) for output in RECONCILED_OUTPUTS},
    }
    if not inputs[stage]:
        expected = {
            "ingest": f"an agency topic {names.root}.agency.<agency_id>.<entity>",
            "resolve": names.resolve,
            "sink": f"a reconciled topic {names.root}.reconciled.<output>",
        }[stage]
        raise DeadLetterError(
            f"dead letter {entry.id} cannot be replayed: its source topic"
            f" '{topic or '(no header)'}' is not an input of the {stage} stage (expected"
            f" {expected}; is --topic-root right?)"
        )
    return topic


@dataclass(frozen=True)
class ReplayPlan:
    """What a replay publishes, and what it leaves and why."""

    to_publish: tuple[tuple[DeadLetterEntry, str], ...]  # (entry, target topic)
    replayed_before: tuple[DeadLetterEntry, ...]
    refused: tuple[tuple[DeadLetterEntry, str], ...]  # (entry, why)


def sink_golden_record(entry: DeadLetterEntry, names: TopicNames) -> tuple[str, str] | None:
    """(entity, golden id) of a sink letter read from a reconciled entity topic (keyed by
    golden id), None for any other letter (match decisions have no golden version)."""
    if entry.stage != "sink" or entry.message.key is None:
        return None
    for output in RECONCILED_OUTPUTS:
        if output != "match_decision" and entry.source_topic == names.reconciled(output):
            return output, entry.message.key.decode(errors="replace")
    return None


def plan_replay(
    entries: Iterable[DeadLetterEntry], names: TopicNames, replayed: frozenset[str],
    *, again: bool = False, superseded: Mapping[str, tuple[int, int]] | None = None,
) -> ReplayPlan:
    """Which of ``entries`` (already filtered) a replay publishes: ``replayed`` holds the IDs
    the audit shows replayed before; those are left unless ``again``. ``superseded``: sink
    letters whose golden record the store holds at the same or a newer version (ID -> (the
    letter's version, the store's)): refused, since the store would ignore the replay and
    the compacted topic would in time keep the older message instead of the newer one."""
    publish: list[tuple[DeadLetterEntry, str]] = []
    before: list[DeadLetterEntry] = []
    refused: list[tuple[DeadLetterEntry, str]] = []
    for entry in entries:
        if str(entry.id) in replayed and not again:
            before.append(entry)
            continue
        if superseded and str(entry.id) in superseded:
            letter_version, stored = superseded[str(entry.id)]
            refused.append((entry, (
                f"dead letter {entry.id} is not replayed: the store holds its golden record at"
                f" version {stored}, not older than the letter's {letter_version}; replayed,"
                f" the older message would in time replace the newer one on the compacted"
                f" {entry.source_topic} (docs/CONTRACT.md, Replaying one)")))
            continue
        try:
            publish.append((entry, replay_target(entry, names)))
        except DeadLetterError as error:
            refused.append((entry, str(error)))
    return ReplayPlan(tuple(publish), tuple(before), tuple(refused))


def render_list(entries: Sequence[DeadLetterEntry]) -> str:
    """The table of ``tipsync dlq list``: ids, reason, where from, when; no key, no value."""
    if not entries:
        return "no dead letters"
    lines = [f"{'ID':<18} {'REASON':<22} {'FAILED_AT':<29} {'BYTES':>7}  SOURCE"]
    for entry in entries:
        source = (f"{entry.source_topic}[{entry.source_partition}]@{entry.source_offset}"
                  if entry.source_topic else "-")
        lines.append(f"{str(entry.id):<18} {entry.reason:<22} {entry.failed_at:<29}"
                     f" {entry.value_bytes:>7}  {source}")
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.reason] = counts.get(entry.reason, 0) + 1
    lines.append(f"{len(entries)} dead letter(s): "
                 + ", ".join(f"{count} {reason}" for reason, count in sorted(counts.items())))
    return "\n".join(lines)


def render_entry(entry: DeadLetterEntry) -> str:
    """``tipsync dlq show ID`` without ``--payload``."""
    meaning = REASONS.get(entry.reason, "not a reason of the dead-letter format")
    return "\n".join([
        f"dead letter {entry.id}",
        f"  reason          {entry.reason}: {meaning}",
        f"  detail          {entry.detail}",
        f"  source          {entry.source_topic or '-'} partition {entry.source_partition}"
        f" offset {entry.source_offset}",
        f"  failed at       {entry.failed_at or '-'}",
        f"  value           {entry.value_bytes} bytes"
        + ("" if entry.had_key else " (the message had no key)"),
        "  payload         not shown: it may hold personal data (--payload, as admin, is"
        " recorded in the audit)",
    ])
