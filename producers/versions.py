"""Which rows changed, and the source_version each change is published with.

Rules, in order (documented for agencies in docs/PRODUCERS.md):
1. a ``source_version`` column (an integer counter kept by the agency's system) is used as is;
2. else ``updated_at``, as milliseconds since 1970 (UTC);
3. else the producer counts: the run's clock in milliseconds, or one more than the last
   published version when the clock is behind it.
A row is published when the hash of its normalised content differs from the last
acknowledged one. A row older than what was already published (a stale export) is skipped;
a changed row whose version did not move (edited without touching updated_at) gets the last
version + 1, so downstream does not drop a real change as a repeat.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import orjson

from producers.canonical import Entity
from producers.checkpoint import PublishedState
from producers.records import NormalisedRecord

# Payloads with floats (coordinates) are hashed by the standard library only: orjson writes
# some floats differently (1e-05 as 1e-5), which would change their hashes.
_ENTITIES_WITH_FLOATS = frozenset({Entity.LOCATION})


class Change(StrEnum):
    UNCHANGED = "unchanged"
    STALE = "stale"
    PUBLISH = "publish"


@dataclass(frozen=True)
class Decision:
    change: Change
    source_version: int
    content_hash: str


def content_hash(record: NormalisedRecord) -> str:
    """A hash of what downstream sees of the record (normalised, so spacing does not count)."""
    document: dict[str, Any] = {
        "deleted": record.deleted,
        "payload": None if record.deleted else record.payload,
        "derived": [
            [derived.source_record_id, derived.deleted, derived.payload]
            for derived in record.derived
        ],
    }
    if record.quality_issues:
        # Only when there are some: a record without issues hashes as it always did.
        document["quality_issues"] = [list(issue) for issue in record.quality_issues]
    # The hash is stored in checkpoints, so its text must stay what json.dumps wrote first.
    # orjson writes the same bytes ten times faster for ASCII text without floats; for other
    # text (json.dumps escapes non-ASCII characters, orjson does not) the slow path stays.
    if record.entity not in _ENTITIES_WITH_FLOATS:
        fast = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        if fast.isascii():
            return hashlib.sha256(fast).hexdigest()
    text = json.dumps(document, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _json_default(value: Any) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"cannot hash {type(value).__name__}")


def epoch_millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def decide(record: NormalisedRecord, previous: PublishedState | None, now_millis: int) -> Decision:
    digest = content_hash(record)
    if previous is not None and previous.content_hash == digest:
        return Decision(Change.UNCHANGED, previous.source_version, digest)
    if record.explicit_version is not None:
        version = record.explicit_version
    elif record.updated_at is not None:
        version = epoch_millis(record.updated_at)
    else:
        version = max(now_millis, previous.source_version + 1 if previous else 0)
    if previous is not None:
        if version < previous.source_version:
            return Decision(Change.STALE, version, digest)
        if version == previous.source_version:
            version += 1
    return Decision(Change.PUBLISH, version, digest)


def deletion_version(previous: PublishedState, now_millis: int) -> int:
    """The version of a DELETE for a record that left a full export: after every other."""
    return max(now_millis, previous.source_version + 1)
