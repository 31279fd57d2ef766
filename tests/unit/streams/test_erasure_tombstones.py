"""What the stream does with the tombstones ``tipsync erase`` writes, and how retention_until
travels: ingest and resolve pass over a null value quietly (no dead letter, no output);
resolve, handed one, writes a snapshot at its offset and deletes the older ones, once per
run of DELETEs; keyless dead letters get a key of their place (compacted topics refuse a
message without one). Nothing running."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

from schemas.agencies import load_agencies
from schemas.dead_letters import dead_letter_key
from schemas.examples import example_delete, example_event
from schemas.topics import resolve_config
from streams.ingest import check_event, golden_entity, source_of
from streams.resolve import Resolver
from streams.resolve_stage import ResolveStage, trust_ranks
from streams.snapshot import SnapshotPolicy, read_snapshot, snapshot_files, write_snapshot
from streams.snapshot_schedule import SnapshotSchedule
from tests.unit.streams.test_ingest_handler import POLICE, TOPICS, Message, _handler, _message
from tests.unit.streams.test_resolve_handler import TOPIC, World, _topic
from tests.unit.streams.test_resolve_handler import _handler as _resolve_handler


def test_ingest_passes_over_a_tombstone_quietly() -> None:
    handler, table, sent, metrics = _handler()
    tombstone = Message(TOPICS.agency(POLICE, "person"), 0, 7, f"{POLICE}:R-1".encode(), None)
    asyncio.run(handler.ingest_one(tombstone))
    assert sent == [] and table.data == {}
    # and the next event of the record is ingested as usual
    asyncio.run(handler.ingest_one(_message("case", "R-1", 8)))
    assert len(sent.to(TOPICS.reconciled("case"))) == 1


def _stage() -> ResolveStage:
    stage = ResolveStage(lambda: Resolver(trust_ranks(load_agencies())))
    stage.finish_loading()
    return stage


def _old_snapshots(directory: Path, offsets: list[int]) -> None:
    for offset in offsets:
        write_snapshot(directory, _stage(), offset, "topic-id")


def test_a_resolve_tombstone_writes_a_snapshot_and_deletes_the_older_ones(
    tmp_path: Path,
) -> None:
    world = World(_topic(6))
    world.topic[5] = Message(TOPIC, 0, 5, b"person:police-ctu:4", None)  # erase's tombstone
    handler = _resolve_handler(world, tmp_path)
    handler.snapshots = SnapshotSchedule(SnapshotPolicy(every_records=1000), tmp_path, TOPIC,
                                         lambda: "topic-id")
    _old_snapshots(tmp_path, [1, 2])
    world.stages.clear()

    async def run() -> None:
        for message in world.topic:
            await handler.resolve_one(message)

    handler._rebuild = lambda until: _fake_rebuild(world, until)  # type: ignore[method-assign]
    asyncio.run(run())
    assert [snapshot.offset for snapshot in snapshot_files(tmp_path)] == [5]
    assert world.published == [0, 1, 2, 3, 4]  # the tombstone publishes nothing


async def _fake_rebuild(world: World, until: int) -> tuple[Any, int | None]:
    stage, replayed = await world.rebuild(until)
    stage.resolver = _stage().resolver  # what a snapshot writes
    stage.links = {}
    stage.link_states = lambda: iter(())
    stage.model_fingerprint = "model"
    return stage, replayed


def test_the_purge_is_once_per_run_of_deletes_and_again_after_a_rebuild(tmp_path: Path) -> None:
    schedule = SnapshotSchedule(SnapshotPolicy(every_records=1000), tmp_path, TOPIC,
                                lambda: "topic-id")
    _old_snapshots(tmp_path, [1, 2])
    asyncio.run(schedule.purge(_stage(), 10))
    assert [snapshot.offset for snapshot in snapshot_files(tmp_path)] == [10]
    asyncio.run(schedule.purge(_stage(), 11))  # a second tombstone of the same erasure
    assert [snapshot.offset for snapshot in snapshot_files(tmp_path)] == [10]
    schedule.deleted()  # a DELETE resolved since
    asyncio.run(schedule.purge(_stage(), 12))
    assert [snapshot.offset for snapshot in snapshot_files(tmp_path)] == [12]
    schedule.rebuilt(3)  # a rebuilt stage cannot tell what the files hold
    asyncio.run(schedule.purge(_stage(), 13))
    assert [snapshot.offset for snapshot in snapshot_files(tmp_path)] == [13]


def test_with_snapshots_off_the_purge_deletes_them_all(tmp_path: Path) -> None:
    schedule = SnapshotSchedule(SnapshotPolicy(every_records=0), tmp_path, TOPIC,
                                lambda: "topic-id")
    _old_snapshots(tmp_path, [1, 2])
    asyncio.run(schedule.purge(_stage(), 10))
    assert snapshot_files(tmp_path) == []


def test_a_keyless_dead_letter_gets_a_key_of_its_place() -> None:
    assert dead_letter_key(b"police-ctu:R-1", "t.agency.police-ctu.person", 1, 9) == (
        b"police-ctu:R-1")
    assert dead_letter_key(None, "t.agency.police-ctu.person", 1, 9) == (
        b"no-key:t.agency.police-ctu.person:1:9")


def test_retention_until_travels_into_the_lineage_and_not_for_a_delete_it_is_kept() -> None:
    event = check_event(POLICE, "case", f"{POLICE}:C-1".encode(),
                        example_event("case", POLICE, "C-1"), now_ms=1_800_000_000_000)
    _, golden = golden_entity(event)
    assert golden is not None
    assert golden["sources"][0]["retention_until"] == date(2036, 3, 14)
    no_date = check_event(POLICE, "case", f"{POLICE}:C-1".encode(),
                          example_event("case", POLICE, "C-1", retention_until=None),
                          now_ms=1_800_000_000_000)
    assert "retention_until" not in source_of(no_date)  # the Avro default, null
    deleted = check_event(POLICE, "case", f"{POLICE}:C-1".encode(),
                          example_delete("case", POLICE, "C-1"), now_ms=1_800_000_000_000)
    assert golden_entity(deleted)[1] is None


def test_retention_until_travels_into_a_golden_person_and_through_a_snapshot(
    tmp_path: Path,
) -> None:
    stage = _stage()
    event = check_event(POLICE, "person", f"{POLICE}:P-1".encode(),
                        example_event("person", POLICE, "P-1"), now_ms=1_800_000_000_000)
    (person,) = [output for output in stage.apply(event, golden_version=1)
                 if output.kind == "person"]
    assert person.value is not None
    assert person.value["sources"][0]["retention_until"] == date(2036, 3, 14)
    written = write_snapshot(tmp_path, stage, 2, "topic-id")
    assert b'"retention_until":"2036-03-14"' in written.path.read_bytes()


def test_a_rebuild_from_an_older_snapshot_forgets_an_erased_record(tmp_path: Path) -> None:
    # The snapshot predates the erasure, and compaction has removed the record's DELETE:
    # the tombstone, kept on the resolve topic, is what the replay meets.
    stage = _stage()
    for record in ("P-1", "P-2"):
        stage.apply(check_event(POLICE, "person", f"{POLICE}:{record}".encode(),
                                example_event("person", POLICE, record),
                                now_ms=1_800_000_000_000), golden_version=1)
    written = write_snapshot(tmp_path, stage, 2, "topic-id")
    _, rebuilt = read_snapshot(written.path, lambda state: Resolver.from_state(
        state, trust=trust_ranks(load_agencies())))
    rebuilt.load_erasure("person:police-ctu:P-1")
    rebuilt.load_erasure("link:police-ctu:L-9")  # a link it never held: nothing happens
    rebuilt.finish_loading()
    assert set(rebuilt.resolver.records) == {"police-ctu:P-2"}
    assert rebuilt.erased_while_loading == 1  # so the handler writes a snapshot at once
    assert resolve_config()["delete.retention.ms"] == str(100 * 365 * 24 * 3600 * 1000)


def test_a_rebuild_that_forgot_erased_records_writes_a_snapshot_and_deletes_the_older(
    tmp_path: Path,
) -> None:
    world = World(_topic(5), committed=3)
    handler = _resolve_handler(world, tmp_path)
    handler.snapshots = SnapshotSchedule(SnapshotPolicy(every_records=1000), tmp_path, TOPIC,
                                         lambda: "topic-id")
    _old_snapshots(tmp_path, [1, 2])  # older than the erasure: they hold the record

    async def rebuild(until: int) -> tuple[Any, int | None]:
        stage, replayed = await _fake_rebuild(world, until)
        stage.erased_while_loading = 1  # a tombstone after the snapshot it started from
        return stage, replayed

    handler._rebuild = rebuild  # type: ignore[method-assign]
    asyncio.run(handler.resolve_one(world.topic[3]))
    assert [snapshot.offset for snapshot in snapshot_files(tmp_path)] == [3]
    assert world.published == [3]
