"""Erasure, the pure part: the DELETE event that erases a source record, and what an erasure
leaves behind in Kafka and until when (``tipsync erase``, ``deploy.operations.erasure``).

A record is erased through the pipeline: a DELETE event on its agency topic with a
``source_version`` above every version the pipeline holds for it (so ingest accepts it, and
resolve and the sink remove it like any agency delete), then tombstones under its keys on the
topics that keep copies. Kafka removes the older messages of a tombstoned key only by
compaction, which never touches the active segment: ``copy_deadline`` says, from a topic's
configuration, until when a copy may remain.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from schemas.config import DAY_MS
from schemas.enums import FeedKind
from schemas.outbound import feed_message_id
from schemas.topics import source_key
from streams.ingest import FUTURE_TOLERANCE_MS, held_key

# The namespace of erasure events' ids (uuid5 of the record, its entity and the version):
# publishing the same erasure again is a replay ingest drops.
ERASURE_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://tipsync/erasure")
# Kafka's defaults, when a topic's configuration does not say (``log.roll.ms`` 7 days,
# ``max.compaction.lag.ms`` unbounded, ``log.cleaner.backoff.ms`` 15 s)
DEFAULT_SEGMENT_MS: Final = 7 * DAY_MS
CLEANER_BACKOFF_MS: Final = 15_000


@dataclass(frozen=True)
class ErasureTarget:
    """One source record to erase, as the store and the agency topic know it."""

    entity: str
    agency_id: str
    source_record_id: str
    golden_id: str | None = None  # the golden record it belongs to (None: not in the store)
    store_version: int | None = None  # its source_version in the store

    @property
    def source_key(self) -> str:
        return source_key(self.agency_id, self.source_record_id)

    @property
    def held_key(self) -> str:
        """Its key on the resolve topic and the resolve dead-letter topic."""
        return held_key(self.entity, self.agency_id, self.source_record_id)


def delete_version(store_version: int | None, topic_versions: Iterable[int],
                   now_ms: int) -> int | None:
    """The ``source_version`` of the erasing DELETE: one above the highest the store or the
    agency topic holds (ingest's table holds no version that reached neither), leaving out
    versions from the implausible future, which ingest refused (``check_plausible``: one of
    them would make the DELETE refused too); None when neither knows the record."""
    limit = now_ms + FUTURE_TOLERANCE_MS
    known = [version for version in topic_versions if version <= limit]
    if store_version is not None:
        known.append(store_version)
    return max(known) + 1 if known else None


def delete_event(target: ErasureTarget, version: int, now: datetime) -> dict[str, Any]:
    """The DELETE event of the agency's contract that erases ``target`` (no payload, no
    label lowered: VICTIM_PROTECTED, the most protective, since a DELETE carries nothing)."""
    return {
        "event_id": str(uuid.uuid5(ERASURE_NAMESPACE,
                                   f"{target.held_key}:{version}")),
        "agency_id": target.agency_id,
        "source_record_id": target.source_record_id,
        "op": "DELETE",
        "source_version": version,
        "event_time": now,
        "produced_at": now,
        "classification": "VICTIM_PROTECTED",
        "legal_basis": "LEGAL_OBLIGATION",
        "consent_ref": None,
        "retention_until": None,
        "quality_issues": [],
        "payload": None,
    }


@dataclass(frozen=True)
class CopyDeadline:
    """Until when older messages of a tombstoned key may stay in one topic."""

    topic: str
    compacted: bool
    until: datetime  # the latest moment a copy may remain (given an append after the roll)
    explanation: str


def _ms(config: Mapping[str, str], name: str, default: int) -> int:
    raw = config.get(name)
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        return default
    return default if value < 0 else value


def copy_deadline(topic: str, config: Mapping[str, str], now: datetime) -> CopyDeadline:
    """Until when a copy may stay in ``topic`` after a tombstone written at ``now``, from its
    configuration (``cleanup.policy``, ``segment.ms``, ``max.compaction.lag.ms``,
    ``min.compaction.lag.ms``, ``retention.ms``, ``delete.retention.ms``).

    Compacted: the active segment rolls at the first append after min(segment.ms,
    max.compaction.lag.ms), the cleaner then removes the older messages once they are
    min.compaction.lag.ms old (within its backoff), and the tombstone itself (a key, no
    value) goes delete.retention.ms later. Not compacted: copies stay until their segment
    rolls and retention.ms has passed."""
    policy = config.get("cleanup.policy", "delete")
    segment_ms = _ms(config, "segment.ms", DEFAULT_SEGMENT_MS)
    if "compact" in policy:
        lag_ms = _ms(config, "max.compaction.lag.ms", 2**63 - 1)
        roll_ms = min(segment_ms, lag_ms)
        min_lag_ms = _ms(config, "min.compaction.lag.ms", 0)
        delete_retention_ms = _ms(config, "delete.retention.ms", DAY_MS)
        wait = max(roll_ms, min_lag_ms) + CLEANER_BACKOFF_MS
        until = now + timedelta(milliseconds=wait)
        return CopyDeadline(topic, True, until, (
            f"compacted: older messages of the key go when the segment rolls (first append"
            f" after {_span(roll_ms)}: segment.ms {segment_ms}, max.compaction.lag.ms"
            f" {lag_ms}) and the cleaner runs (min.compaction.lag.ms {min_lag_ms}); the"
            f" tombstone (key only) {_span(delete_retention_ms)} after (delete.retention.ms)"
        ))
    retention_ms = _ms(config, "retention.ms", 7 * DAY_MS)
    until = now + timedelta(milliseconds=segment_ms + retention_ms)
    return CopyDeadline(topic, False, until, (
        f"not compacted (cleanup.policy {policy}): the tombstone removes nothing; copies go"
        f" with their segment, {_span(retention_ms)} after it rolls (retention.ms"
        f" {retention_ms}, segment.ms {segment_ms}); make the topic compact,delete"
        " (docs/OPERATIONS.md)"
    ))


def _span(millis: int) -> str:
    if millis >= 2**62:
        return "never"
    if millis % DAY_MS == 0:
        return f"{millis // DAY_MS} d"
    if millis % 3_600_000 == 0:
        return f"{millis // 3_600_000} h"
    return f"{millis / 1000:g} s"


def past_retention(retention_until: date | None, today: date) -> bool:
    """Whether a record whose last day of keeping is ``retention_until`` must go ``today``."""
    return retention_until is not None and retention_until < today


def utc_today(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(UTC).date()


# --- the agencies' feeds ----------------------------------------------------------------------


def erased_notice(recipient: str, person_id: str, golden_version: int,
                  own_records: Iterable[str], now: datetime) -> dict[str, Any]:
    """The ``RECORD_ERASED`` feed message telling ``recipient`` that records of
    ``person_id`` were erased: messages about the person below ``golden_version`` (the
    golden person's version once the erasure passed through) may hold their values. It
    shows no value: only the recipient's own erased record ids, never another agency's (an
    agency must not learn that a shelter held the person)."""
    return {
        "person_id": person_id,
        "message_id": feed_message_id(recipient, FeedKind.RECORD_ERASED, person_id,
                                      golden_version),
        "agency_id": recipient,
        "kind": FeedKind.RECORD_ERASED.value,
        "golden_version": golden_version,
        "produced_at": now,
        "your_records": sorted(set(own_records)),
        "classification": "OFFICIAL",  # of what it shows: ids the recipient holds already
        "person": None,
        "holders": [],
        "reported_by": None,
        "link": None,
    }


def feed_deadline(topic: str, config: Mapping[str, str], now: datetime,
                  messages: int) -> CopyDeadline:
    """Until when the ``messages`` feed messages about an erased person stay on the feed
    ``topic``. A feed is not compacted on purpose: it is a sequence of alerts an agency
    must all receive, and compaction by person would drop the older alerts of a person
    before a subscriber that was down reads them; so they go with their segment."""
    deadline = copy_deadline(topic, config, now)
    if deadline.compacted:
        return deadline
    retention_ms = _ms(config, "retention.ms", 7 * DAY_MS)
    segment_ms = _ms(config, "segment.ms", DEFAULT_SEGMENT_MS)
    return CopyDeadline(topic, False, deadline.until, (
        f"{messages} message(s) about the erased person(s), sent before the erasure, stay"
        f" until their segment has rolled and {_span(retention_ms)} passed (retention.ms"
        f" {retention_ms}, segment.ms {segment_ms}): a feed is not compacted, so that every"
        " alert reaches the agency; the agency was sent RECORD_ERASED and deletes what it"
        " stored from them"
    ))
