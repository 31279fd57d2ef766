"""The one dead-letter format: what a stage could not process, with the reason, for an operator.

Every stage that gives up on a message (ingest, resolve, sink) writes it the same way. A dead
letter on ``tip.dlq.<stage>`` keeps the original message untouched (same key, same value
bytes) so it can be replayed once the cause is fixed, and says why in its headers. (A
message without a key gets ``no-key:<topic>:<partition>:<offset>``, from ``dead_letter_key``:
dead-letter topics are compacted, so that ``tipsync erase`` can tombstone a record's dead
letters, and the broker refuses a message without a key on a compacted topic.)

==========================  ==================================================================
header                      value
==========================  ==================================================================
``tipsync.stage``           the stage that gave up: ``ingest``, ``resolve`` or ``sink``
``tipsync.reason``          a short code from ``REASONS`` (what metrics and alerts count by)
``tipsync.detail``          one sentence naming the problem and the fix (no personal data)
``tipsync.source_topic``    where the message was read
``tipsync.source_partition``  its partition
``tipsync.source_offset``   its offset
``tipsync.failed_at``       when it was given up on, ISO 8601 UTC
==========================  ==================================================================

Headers never carry personal data: details are built from sizes, schema ids, subjects,
agency ids and field names only, never from field values.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

# reason code -> what it means; metrics and alerts count by the code (docs/CONTRACT.md lists
# the same table, and a unit test keeps the two in step)
REASONS: Final[dict[str, str]] = {
    "undecodable": "the bytes are not a Confluent wire-format Avro message that decodes",
    "unknown_schema": "the message's schema id is not in the registry",
    "wrong_schema": "the message's record type is not the entity its topic carries",
    "agency_mismatch": "the payload's agency_id is not the agency of its topic",
    "key_mismatch": "the message key is not the identity of its payload (source key or golden id)",
    "bad_key": "the message has no key, or its key is not a golden id (UUID)",
    "invalid_envelope": "the envelope breaks a rule of the contract (op and payload, version)",
    "future_version": "the source_version is above now in epoch milliseconds + 1 day (forged or"
    " broken: it would make every later change of the record stale)",
    "future_event_time": "the event_time is more than 1 day ahead of the stream's clock",
    "invalid_record": "the reconciled record breaks a rule the store needs (a date, a version)",
    "unresolvable": "the resolve stage refused the record (see the detail)",
    "refused_by_postgresql": "PostgreSQL refused the row (a constraint, a value out of range)",
    "processing_error": "an unexpected error in the stage's code (a bug: the detail says where)",
}

MAX_DETAIL_CHARACTERS: Final = 400

STAGE_HEADER: Final = "tipsync.stage"
REASON_HEADER: Final = "tipsync.reason"
DETAIL_HEADER: Final = "tipsync.detail"
SOURCE_TOPIC_HEADER: Final = "tipsync.source_topic"
SOURCE_PARTITION_HEADER: Final = "tipsync.source_partition"
SOURCE_OFFSET_HEADER: Final = "tipsync.source_offset"
FAILED_AT_HEADER: Final = "tipsync.failed_at"
# every header of a dead letter, in the order written
DEAD_LETTER_HEADERS: Final = (
    STAGE_HEADER, REASON_HEADER, DETAIL_HEADER, SOURCE_TOPIC_HEADER, SOURCE_PARTITION_HEADER,
    SOURCE_OFFSET_HEADER, FAILED_AT_HEADER,
)


@dataclass(frozen=True)
class DeadLetter:
    """Why one message was given up on; raised by the pure stage code, sent by the shell."""

    reason: str
    detail: str

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(
                f"dead-letter reason '{self.reason}' is not one of {', '.join(REASONS)}; "
                "add it to schemas.dead_letters.REASONS (and docs/CONTRACT.md) first"
            )


class Rejected(Exception):  # noqa: N818 - it reads as the outcome: the message was rejected
    """Raised by a stage's pure code for a message it cannot process."""

    def __init__(self, reason: str, detail: str) -> None:
        self.dead_letter = DeadLetter(reason, detail)
        super().__init__(f"{reason}: {detail}")


# Frames of the traceback named in a processing_error detail, innermost last.
WHERE_FRAMES: Final = 3


def processing_error(stage: str, error: Exception, source_topic: str) -> DeadLetter:
    """The dead letter of a message whose processing raised an exception nobody expected.

    The detail names the exception's type and where it was raised (file, line and function of
    the innermost frames), never its message: an exception's text may quote the field values
    it choked on, and those are personal data.
    """
    frames = traceback.extract_tb(error.__traceback__)[-WHERE_FRAMES:]
    where = " <- ".join(
        f"{_short_path(frame.filename)}:{frame.lineno} {frame.name}" for frame in reversed(frames)
    ) or "an unknown place"
    return DeadLetter(
        "processing_error",
        f"{stage} raised {type(error).__name__} at {where} on a message of {source_topic}; the "
        "message is kept here unchanged: fix the code, then publish it again to its topic",
    )


def _short_path(filename: str) -> str:
    """``streams/app.py`` rather than the whole path of the checkout or the site-packages."""
    parts = Path(filename).parts
    for anchor in ("site-packages", "streams", "sinks", "schemas"):
        if anchor in parts:
            index = len(parts) - 1 - parts[::-1].index(anchor)
            return "/".join(parts[index + (anchor == "site-packages"):])
    return Path(filename).name


def dead_letter_key(key: bytes | None, source_topic: str, partition: int, offset: int) -> bytes:
    """The key of a dead letter: the message's own, or for a message without one a key of
    its place (ids only), unique, so compaction never drops it for another's."""
    if key is not None:
        return key
    return f"no-key:{source_topic}:{partition}:{offset}".encode()


def dead_letter_headers(
    letter: DeadLetter,
    stage: str,
    source_topic: str,
    partition: int,
    offset: int,
    failed_at: datetime | None = None,
) -> list[tuple[str, bytes]]:
    """The headers of a dead letter (see the module docstring)."""
    moment = (failed_at or datetime.now(UTC)).astimezone(UTC)
    detail = letter.detail
    if len(detail) > MAX_DETAIL_CHARACTERS:
        detail = detail[: MAX_DETAIL_CHARACTERS - 3] + "..."
    return [
        (STAGE_HEADER, stage.encode()),
        (REASON_HEADER, letter.reason.encode()),
        (DETAIL_HEADER, detail.encode()),
        (SOURCE_TOPIC_HEADER, source_topic.encode()),
        (SOURCE_PARTITION_HEADER, str(partition).encode()),
        (SOURCE_OFFSET_HEADER, str(offset).encode()),
        (FAILED_AT_HEADER, moment.isoformat(timespec="milliseconds").encode()),
    ]


def read_dead_letter_headers(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    """Header name -> text, for operators' tools and tests."""
    return {name: value.decode() for name, value in headers or [] if name in DEAD_LETTER_HEADERS}
