"""An agency's own database applies an erasure notice: ``tipsync subscribe``'s PostgreSQL
target deletes, in the notice's transaction, the person's earlier messages below the
notice's golden_version, and keeps the later ones, other people's and the notice itself."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from deploy.bench.scratch import scratch_database
from producers.feed_targets import FeedRow, PostgresTarget
from schemas.config import Settings

TOPIC = "tip.outbound.immigration"
NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def _row(offset: int, person_id: str, kind: str, golden_version: int) -> FeedRow:
    message: dict[str, Any] = {
        "message_id": str(uuid.uuid4()), "agency_id": "immigration", "kind": kind,
        "person_id": person_id, "golden_version": golden_version, "produced_at": NOW,
        "your_records": [], "classification": "OFFICIAL", "person": None, "holders": [],
        "reported_by": None, "link": None,
    }
    return FeedRow(TOPIC, 0, offset, message)


def test_an_erasure_notice_deletes_the_persons_earlier_messages_only(stack: Settings) -> None:
    erased, other = str(uuid.uuid4()), str(uuid.uuid4())
    with scratch_database(stack.database_url, "test_feed_erasure") as url:
        target = PostgresTarget(url)
        try:
            target.write([_row(0, erased, "GOLDEN_CHANGED", 3),
                          _row(1, erased, "RECORD_REPORTED", 5),
                          _row(2, other, "GOLDEN_CHANGED", 4),
                          _row(3, erased, "GOLDEN_CHANGED", 7)], {0: 4})
            target.write([_row(4, erased, "RECORD_ERASED", 7)], {0: 5})
            assert target.positions(TOPIC) == {0: 5}
        finally:
            target.close()
        with psycopg.connect(url) as connection:
            kept = connection.execute(
                "SELECT person_id::text, kind, golden_version FROM tipsync_feed.message"
                " ORDER BY \"offset\"").fetchall()
    assert kept == [(other, "GOLDEN_CHANGED", 4), (erased, "GOLDEN_CHANGED", 7),
                    (erased, "RECORD_ERASED", 7)]
