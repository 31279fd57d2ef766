"""The demo's live minute: one agency's changes as its long-lived producer publishes them.

An agency runs one producer that stays up (``tipsync produce --sql … --follow``), not a
process per change, so the minute uses the library that command wraps: one ``Publisher`` (the
agency's own Kafka principal), one ``ChangeTracker`` per entity with its checkpoint. Each
change is shown when PostgreSQL has it, with its freshness measured as ``tipsync bench e2e``
measures it: the commit timestamp of its ``*_source`` row (``pg_xact_commit_timestamp``; the
local stack has ``track_commit_timestamp = on``) minus the change's event time (its
``updated_at``, set at the moment the change is made). A delete that removes the source row
has no commit timestamp to read: it is timed when the poll no longer finds the row.
"""

from __future__ import annotations

import csv
import json
import random
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import psycopg

from deploy.demo.generate import Manifest
from deploy.demo.world import PHONE_EXCHANGES
from deploy.operations.drive import percentile, say
from deploy.stack.layout import StateLayout
from producers.canonical import Entity
from producers.checkpoint import CheckpointStore, source_folder
from producers.delivery import Publisher
from producers.encoding import make_serializer
from producers.events import Governance
from producers.records import RowError, to_source_record
from producers.tracker import ChangeTracker
from producers.versions import Change
from schemas import config
from schemas.agencies import load_agencies
from schemas.config import Settings
from schemas.topics import agency_topic

LIVE_AGENCY = "police-ctu"  # exports the canonical columns, so live rows need no mapping
LIVE_ENTITIES = (Entity.PERSON, Entity.REPORT)
POLL_SECONDS = 0.05
VISIBLE_TIMEOUT_SECONDS = 30.0

# (source_version, deleted, commit time in seconds since 1970 or None) of a live record.
VISIBILITY_QUERIES = {
    entity: f"select source_version, deleted, extract(epoch from pg_xact_commit_timestamp(xmin))"
            f" from reconciled.{entity.value}_source where agency_id = %s"
            f" and source_record_id = %s"
    for entity in LIVE_ENTITIES
}

Stored = tuple[int, bool, float | None]


def live_people(manifest: Manifest) -> list[dict[str, str]]:
    """The live agency's person rows the producer accepted (never a planted bad row)."""
    base = next(file for file in manifest.exports(0, "person") if file.agency == LIVE_AGENCY)
    planted = {
        bad["row"] for bad in map(json.loads, manifest.bad_rows.read_text().splitlines())
        if bad["agency"] == LIVE_AGENCY and bad["entity"] == "person"
    }
    with open(base.path, newline="", encoding="utf-8") as handle:
        return [row for number, row in enumerate(csv.DictReader(handle), start=2)
                if number not in planted and row.get("source_record_id")]


def agency_settings(settings: Settings) -> Settings:
    """The live agency's connection: the client file given explicitly, else the local
    stack's file of the enrolled agency (what ``tipsync produce --agency`` uses)."""
    if settings.client_properties is not None:
        return settings
    return replace(settings, local_client_file=config.local_agency_file(settings.home,
                                                                        LIVE_AGENCY))


class LiveProducer:
    """The live agency's long-lived producer: one Kafka producer, a tracker per entity."""

    def __init__(self, settings: Settings) -> None:
        agency = load_agencies()[LIVE_AGENCY]
        governance = Governance(classification=agency.classification,
                                legal_basis=agency.legal_basis,
                                retention_days=agency.retention_days)
        entities = [*LIVE_ENTITIES, Entity.LINK]
        client = agency_settings(settings)
        self.publisher = Publisher(client.client)
        self.publisher.check_topics([agency_topic(LIVE_AGENCY, entity.value)
                                     for entity in entities])
        serialize = make_serializer(client, entities, LIVE_AGENCY, governance)
        self.trackers: dict[Entity, ChangeTracker] = {}
        for entity in LIVE_ENTITIES:
            source = f"live-{entity.value}"  # the checkpoint earlier demos' live changes kept
            store = CheckpointStore(
                source_folder(settings.home, LIVE_AGENCY, entity.value, source), source)
            self.trackers[entity] = ChangeTracker(
                LIVE_AGENCY, store, self.publisher, serialize,
                lambda item: agency_topic(LIVE_AGENCY, item.value), governance)

    def publish(self, entity: Entity, row: dict[str, str]) -> bool:
        """Publish one row now if it changed (False: nothing to publish, e.g. a record deleted
        already); raises ``RowError`` if the producer refuses it."""
        tracker = self.trackers[entity]
        change = tracker.offer(to_source_record(entity, row))
        tracker.pump()
        return change is Change.PUBLISH

    def close(self) -> None:
        try:
            for tracker in self.trackers.values():
                tracker.finish(timeout=30)
        finally:
            for tracker in self.trackers.values():
                tracker.store.close()
            self.publisher.close()


@dataclass(frozen=True)
class LiveChange:
    kind: str  # update, delete, report
    entity: Entity
    row: dict[str, str]
    event_time: float  # seconds since 1970, the row's updated_at

    @property
    def record_id(self) -> str:
        return self.row["source_record_id"]


def make_change(rng: random.Random, people: list[dict[str, str]]) -> LiveChange:
    kind = rng.choice(("update", "update", "report", "delete"))
    moment = datetime.now(UTC)
    now = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if kind == "report":
        row = {"source_record_id": f"CTU-LIVE-{uuid.uuid4().hex[:10]}", "channel": "HOTLINE",
               "received_at": now,
               "narrative": "Live demo tip (synthetic): workers seen housed at a farm.",
               "parish": rng.choice(("St. Ann", "Clarendon", "Manchester")),
               "case_ref": "", "updated_at": now}
        return LiveChange(kind, Entity.REPORT, row, moment.timestamp())
    row = {**rng.choice(people), "updated_at": now}
    if kind == "update":
        # A new number on an exchange the generator uses, so it is a valid one.
        row["phone"] = f"876-{rng.choice(PHONE_EXCHANGES)}-{rng.randint(1000, 9999)}"
    else:
        row["deleted"] = "true"
    return LiveChange(kind, Entity.PERSON, row, moment.timestamp())


def live_minute(settings: Settings, manifest: Manifest, seconds: float) -> None:
    """Updates, deletes and new reports from the live agency, each shown when it lands."""
    if seconds <= 0:
        return
    people = live_people(manifest)
    rng = random.Random()
    say(f"live changes for {seconds:.0f}s from {LIVE_AGENCY} (updates, deletes, new reports), "
        "one long-lived producer; freshness = PostgreSQL's commit time of the row minus the "
        "change's time at the agency:")
    deadline = time.monotonic() + seconds
    tick = 0
    freshness: list[float] = []
    producer = LiveProducer(settings)
    try:
        # One connection for the whole minute: the visibility poll asks every 50 ms.
        with psycopg.connect(settings.database_url, autocommit=True) as connection:
            while time.monotonic() < deadline:
                tick += 1
                started = time.monotonic()
                change = make_change(rng, people)
                before = stored(connection, change)
                try:
                    published = producer.publish(change.entity, change.row)
                except RowError as error:
                    say(f"  tick {tick:>2}: {change.kind:<6} {change.record_id}: refused by the "
                        f"producer ({error})")
                    continue
                if not published:
                    say(f"  tick {tick:>2}: {change.kind:<6} {change.record_id}: unchanged since"
                        " the agency last published it; nothing sent")
                    continue
                seen = wait_visible(connection, change, before, producer)
                if seen is None:
                    outcome = (f"NOT visible within {VISIBLE_TIMEOUT_SECONDS:.0f}s (see stream.log"
                               f" and sink.log in {StateLayout.of(settings).logs})")
                else:
                    fresh, how = seen
                    freshness.append(fresh)
                    outcome = f"in PostgreSQL {fresh:.2f}s after the change ({how})"
                say(f"  tick {tick:>2}: {change.kind:<6} {change.entity.value} "
                    f"{change.record_id}: {outcome}")
                time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    finally:
        producer.close()
    if freshness:
        say(f"live freshness over {len(freshness)} changes (change at the agency -> committed "
            f"in PostgreSQL): p50 {percentile(freshness, 50):.2f}s, "
            f"p99 {percentile(freshness, 99):.2f}s, max {max(freshness):.2f}s")


def stored(connection: psycopg.Connection[Any], change: LiveChange) -> Stored | None:
    row = connection.execute(VISIBILITY_QUERIES[change.entity],
                             (LIVE_AGENCY, change.record_id)).fetchone()
    if row is None:
        return None
    return int(row[0]), bool(row[1]), None if row[2] is None else float(row[2])


def wait_visible(connection: psycopg.Connection[Any], change: LiveChange,
                 before: Stored | None, producer: LiveProducer) -> tuple[float, str] | None:
    """(freshness in seconds, how it was read) once the store shows the change: a newer
    version than ``before``, or for a delete the source record marked deleted or gone."""
    began = time.monotonic()
    while time.monotonic() - began < VISIBLE_TIMEOUT_SECONDS:
        producer.publisher.poll(0)  # serve acknowledgements while waiting
        now = stored(connection, change)
        if now is None and change.kind == "delete" and before is not None:
            return time.time() - change.event_time, "row removed; poll time"
        if now is not None and (before is None or now[0] != before[0]) and (
                now[1] or change.kind != "delete"):
            if now[2] is None:
                return time.time() - change.event_time, "poll time: no commit timestamp"
            return now[2] - change.event_time, "commit timestamp"
        time.sleep(POLL_SECONDS)
    return None
