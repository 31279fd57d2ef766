"""The pure part of erasure: the version of the erasing DELETE, the DELETE itself (a valid
event of the contract that ingest accepts), until when a copy may remain in a topic from its
configuration, which records are past retention, and what an erasure tells the agencies'
feeds. Nothing running."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import fastavro

from deploy.operations.erasure_plan import (
    CLEANER_BACKOFF_MS,
    ErasureTarget,
    copy_deadline,
    delete_event,
    delete_version,
    erased_notice,
    feed_deadline,
    past_retention,
)
from schemas.catalogue import governed_schema
from schemas.config import DAY_MS
from schemas.models import PersonEvent
from schemas.outbound import FeedMessage
from schemas.topics import TopicSettings, erasable_config, outbound_config
from streams.ingest import FUTURE_TOLERANCE_MS, Held, Verdict, check_event, judge

NOW = datetime(2026, 12, 6, 6, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
TARGET = ErasureTarget("person", "police-ctu", "P-1", "4749cb94-9b5f-5e5d-b0f2-53c6db31aaab", 3)


def test_the_delete_goes_one_above_every_version_the_store_or_the_topic_holds() -> None:
    assert delete_version(3, [1, 2, 3], NOW_MS) == 4
    assert delete_version(3, [1, 7], NOW_MS) == 8  # a version not yet in the store
    assert delete_version(None, [5], NOW_MS) == 6  # only on the topic (e.g. a dead letter)
    assert delete_version(9, [], NOW_MS) == 10
    assert delete_version(None, [], NOW_MS) is None  # nothing to erase


def test_a_version_from_the_implausible_future_is_left_out() -> None:
    # ingest refused it (future_version): counting it would make the DELETE refused too
    assert delete_version(3, [3, 2**62], NOW_MS) == 4
    assert delete_version(None, [NOW_MS + FUTURE_TOLERANCE_MS + 1], NOW_MS) is None


def test_the_delete_is_a_contract_event_ingest_accepts_over_the_held_version() -> None:
    event = delete_event(TARGET, 4, NOW)
    PersonEvent.model_validate(event)  # the agency contract
    buffer = io.BytesIO()  # and the Avro schema it is encoded with
    fastavro.schemaless_writer(buffer, governed_schema("person").parsed, event)
    assert buffer.tell() > 0
    checked = check_event("police-ctu", "person", b"police-ctu:P-1", event, now_ms=NOW_MS)
    assert checked.op == "DELETE" and checked.record["payload"] is None
    assert judge(Held(3, ("e1",)), checked.event_id, checked.source_version) is Verdict.ACCEPT
    # publishing the same erasure again is a replay, a new erasure a new event
    assert delete_event(TARGET, 4, NOW)["event_id"] == event["event_id"]
    assert delete_event(TARGET, 5, NOW)["event_id"] != event["event_id"]
    assert TARGET.held_key == "person:police-ctu:P-1"


def test_a_compacted_topic_keeps_a_copy_until_its_segment_rolls_and_the_cleaner_runs() -> None:
    config = erasable_config(30 * DAY_MS)
    deadline = copy_deadline("tip.agency.police-ctu.person", config, NOW)
    assert deadline.compacted
    assert deadline.until == NOW + timedelta(milliseconds=DAY_MS + CLEANER_BACKOFF_MS)
    assert "max.compaction.lag.ms 86400000" in deadline.explanation
    # Kafka's default segment.ms (7 days) when max.compaction.lag.ms does not bound it
    unbounded = copy_deadline("t", {"cleanup.policy": "compact"}, NOW)
    assert unbounded.until == NOW + timedelta(days=7, milliseconds=CLEANER_BACKOFF_MS)
    lagging = copy_deadline("t", {"cleanup.policy": "compact", "segment.ms": "1000",
                                  "min.compaction.lag.ms": str(DAY_MS)}, NOW)
    assert lagging.until == NOW + timedelta(milliseconds=DAY_MS + CLEANER_BACKOFF_MS)


def test_a_topic_that_is_not_compacted_keeps_copies_until_retention() -> None:
    deadline = copy_deadline("tip.dlq.ingest", {"cleanup.policy": "delete",
                                                "retention.ms": str(30 * DAY_MS),
                                                "segment.ms": str(7 * DAY_MS)}, NOW)
    assert not deadline.compacted
    assert deadline.until == NOW + timedelta(days=37)
    assert "make the topic compact,delete" in deadline.explanation


def test_past_retention_is_strictly_before_today() -> None:
    today = date(2026, 12, 6)
    assert past_retention(date(2026, 12, 5), today)
    assert not past_retention(today, today)  # its last day
    assert not past_retention(None, today)  # no fixed end


def test_the_erased_notice_is_a_feed_message_showing_only_the_recipients_own_ids() -> None:
    notice = erased_notice("immigration", TARGET.golden_id or "", 42, ["I-2", "I-2"], NOW)
    message = FeedMessage.model_validate(notice)  # a valid message of the contract
    assert message.kind == "RECORD_ERASED" and message.golden_version == 42
    assert (notice["your_records"], notice["person"], notice["holders"],
            notice["reported_by"], notice["link"]) == (["I-2"], None, [], None, None)
    # the same erasure told again is the same message (the agency's side stores it once)
    assert erased_notice("immigration", TARGET.golden_id or "", 42, ["I-2"], NOW + timedelta(
        hours=1))["message_id"] == notice["message_id"]
    assert erased_notice("police-ctu", TARGET.golden_id or "", 42, [], NOW)["message_id"] != (
        notice["message_id"])


def test_a_feed_keeps_the_messages_until_retention_and_says_the_agency_was_told() -> None:
    config = outbound_config(TopicSettings())
    deadline = feed_deadline("tip.outbound.police-ctu", config, NOW, 3)
    assert not deadline.compacted
    assert deadline.until == NOW + timedelta(milliseconds=7 * DAY_MS + 30 * DAY_MS)
    assert deadline.explanation.startswith("3 message(s) about the erased person(s)")
    assert "RECORD_ERASED" in deadline.explanation
    assert "make the topic compact,delete" not in deadline.explanation  # not for a feed
    compacted = erasable_config(DAY_MS)
    assert feed_deadline("t", compacted, NOW, 3) == copy_deadline("t", compacted, NOW)
