"""Agencies' feeds through the real stack: a stream worker, ``tipsync subscribe`` processes,
scratch databases standing for the agencies' own. All people synthetic.

- agency A (police) holding person P is alerted within seconds when agency B (immigration)
  publishes a record of P, and hears nothing about a person it does not hold;
- an agency cleared for SENSITIVE never receives a value or a holder of a VICTIM_PROTECTED
  record (victim services');
- ``tipsync subscribe`` into PostgreSQL killed with SIGKILL mid-stream resumes without losing
  or repeating a message; into files likewise.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deploy.bench.feeds import (
    agency_database,
    feed_rows,
    person_event,
    start_subscriber,
)
from deploy.bench.stream_harness import StreamHarness
from schemas.config import Settings

POLICE, IMMIGRATION, VICTIMS, CUSTOMS = (
    "police-ctu", "immigration", "victim-services", "customs")
SHELTER_PHONE = "+18765550177"  # only victim services' record has it


@pytest.fixture(scope="module")
def harness(stack: Settings) -> Iterator[StreamHarness]:
    harness = StreamHarness(stack, agencies=(POLICE, IMMIGRATION, VICTIMS, CUSTOMS),
                            entities=("person",), partitions=2).setup()
    try:
        yield harness
    finally:
        harness.teardown()


def _feed(harness: StreamHarness, agency: str) -> list[dict]:
    return [harness.decode(m.value) for m in harness.read(harness.topics.outbound(agency))]


def test_an_agency_hears_within_seconds_when_another_reports_its_person(
    harness: StreamHarness, stack: Settings,
) -> None:
    harness.publish("person", person_event(POLICE, "P-1", 1))
    harness.publish("person", person_event(CUSTOMS, "C-9", 9))  # someone police does not hold
    harness.flush()
    harness.start_worker()
    with agency_database(stack, "feeds_police") as uri:
        subscriber = start_subscriber(harness, POLICE, uri)
        try:
            harness.wait_for(lambda: feed_rows(uri, "GOLDEN_CHANGED"), timeout=120,
                             what="police's own person in its feed")
            published = datetime.now(UTC)
            harness.publish("person", person_event(IMMIGRATION, "I-1", 1))
            harness.flush()
            harness.wait_for(lambda: feed_rows(uri, "RECORD_REPORTED"), timeout=30,
                             what="police's alert")
            [alert] = feed_rows(uri, "RECORD_REPORTED")
            assert (alert["received_at"] - published).total_seconds() < 10
            message = alert["message"]
            assert message["reported_by"] == {"agency_id": IMMIGRATION,
                                              "source_record_id": "I-1"}
            assert message["your_records"] == ["P-1"]
            assert {"agency_id": IMMIGRATION, "source_record_id": "I-1"} in message["holders"]
            # only about the person police holds
            assert all(row["message"]["your_records"] == ["P-1"] for row in feed_rows(uri))
            assert all(row["deliveries"] == 1 for row in feed_rows(uri))
        finally:
            subscriber.send_signal(signal.SIGTERM)
            assert subscriber.wait(timeout=30) == 0
    # customs heard about its own person only; immigration's golden person names police's
    customs = _feed(harness, CUSTOMS)
    assert customs and all(m["your_records"] == ["C-9"] and not m["holders"] for m in customs)
    immigration = _feed(harness, IMMIGRATION)
    assert {"agency_id": POLICE, "source_record_id": "P-1"} in immigration[-1]["holders"]


def test_an_agency_below_victim_protected_never_receives_a_protected_value(
    harness: StreamHarness,
) -> None:
    harness.publish("person", person_event(VICTIMS, "V-1", 1, classification="VICTIM_PROTECTED",
                                           phones=[SHELTER_PHONE]))
    harness.flush()
    harness.wait_for(lambda: any(m["your_records"] == ["V-1"]
                                 for m in _feed(harness, VICTIMS)),
                     timeout=60, what="victim services' feed")
    victims = [m for m in _feed(harness, VICTIMS) if m["kind"] == "GOLDEN_CHANGED"]
    assert SHELTER_PHONE in victims[-1]["person"]["phones"]  # within its own clearance
    harness.wait_for(lambda: any(m["kind"] == "RECORD_REPORTED" and m["reported_by"] is None
                                 for m in _feed(harness, POLICE)),
                     timeout=60, what="police told of a protected record")
    police = _feed(harness, POLICE)
    assert police
    for message in police:
        text = json.dumps(message, default=str)
        assert SHELTER_PHONE not in text
        assert VICTIMS not in text and "V-1" not in text
        assert message["classification"] != "VICTIM_PROTECTED"
    # the alert exists but names nobody
    assert any(m["kind"] == "RECORD_REPORTED" and m["reported_by"] is None for m in police)


def _publish_paced(harness: StreamHarness, people: range) -> threading.Thread:
    """Customs' people, about 100 a second, from a thread: the feed grows while a
    subscriber reads it."""
    def publish() -> None:
        for person in people:
            harness.publish("person", person_event(CUSTOMS, f"C-{person}", person))
            if person % 10 == 0:
                harness.flush()
                time.sleep(0.1)
        harness.flush()
    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    return thread


def _kill_mid_stream(harness: StreamHarness, to: str, people: range,
                     stored: Callable[[], int]) -> int:
    """Start customs' subscriber and let it store the feed so far; then, while new people
    make the feed grow (for seconds), kill it (SIGKILL) once it stored some of the new
    messages; wait until the stream app has written all of them. Returns what was stored."""
    topic = harness.topics.outbound(CUSTOMS)
    subscriber = start_subscriber(harness, CUSTOMS, to)
    backlog = harness.count(topic)
    harness.wait_for(lambda: stored() >= backlog, timeout=120, what="the feed so far stored")
    publishing = _publish_paced(harness, people)
    harness.wait_for(lambda: stored() > backlog + 20, timeout=120,
                     what="new messages stored")
    subscriber.send_signal(signal.SIGKILL)
    subscriber.wait(timeout=30)
    at_kill = stored()
    publishing.join(timeout=120)
    harness.wait_for(harness.caught_up, timeout=180, what="the stream app caught up")
    return at_kill


def test_subscribe_into_postgresql_resumes_after_sigkill_without_loss_or_duplicates(
    harness: StreamHarness, stack: Settings,
) -> None:
    topic = harness.topics.outbound(CUSTOMS)
    with agency_database(stack, "feeds_customs") as uri:
        at_kill = _kill_mid_stream(harness, uri, range(100, 700), lambda: len(feed_rows(uri)))
        assert at_kill < harness.count(topic)  # killed mid-stream
        finished = start_subscriber(harness, CUSTOMS, uri, "--idle-exit", "5")
        assert finished.wait(timeout=180) == 0
        # every message of the topic stored once: a message the stream app published twice
        # (at-least-once, after a rebalance) is one row delivered twice
        on_topic = Counter(harness.decode(m.value)["message_id"] for m in harness.read(topic))
        assert sum(on_topic.values()) >= 600
        assert {str(row["message_id"]): row["deliveries"] for row in feed_rows(uri)} == on_topic


def test_subscribe_into_files_resumes_after_sigkill_without_loss_or_duplicates(
    harness: StreamHarness, tmp_path: Path,
) -> None:
    topic = harness.topics.outbound(CUSTOMS)
    folder = tmp_path / "feed"

    def lines() -> list[dict]:
        return [json.loads(line) for path in sorted(folder.glob("feed-*.jsonl"))
                for line in path.read_text(encoding="utf-8").splitlines()]

    at_kill = _kill_mid_stream(harness, str(folder), range(700, 1000),
                               lambda: len(lines()) if folder.exists() else 0)
    assert at_kill < harness.count(topic)
    finished = start_subscriber(harness, CUSTOMS, str(folder), "--idle-exit", "5",
                                "--rotate-mb", "1")
    assert finished.wait(timeout=180) == 0
    on_topic = Counter(harness.decode(m.value)["message_id"] for m in harness.read(topic))
    assert Counter(line["message_id"] for line in lines()) == on_topic
    assert len(list(folder.glob("feed-*.jsonl"))) >= 1
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
