"""When the live resolve stage is written to a snapshot: by message count, by time, never
more than its share of the time, and a failed write is not fatal. A clock of the test's own,
a real (small) stage and snapshot folder; nothing running."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from schemas.agencies import load_agencies
from streams.resolve import Resolver
from streams.resolve_stage import ResolveStage, trust_ranks
from streams.snapshot import SnapshotPolicy, read_header, snapshot_files
from streams.snapshot_schedule import SnapshotSchedule

TOPIC_ID = "Xq2dHk0nQ3ambLxdC8KXvw"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _schedule(directory: Path, clock: Clock, records: int = 3,
              seconds: float = 60.0) -> SnapshotSchedule:
    return SnapshotSchedule(SnapshotPolicy(records, seconds), directory, "tsnap.internal.resolve",
                            lambda: TOPIC_ID, clock=clock)


def _empty_stage() -> ResolveStage:
    stage = ResolveStage(lambda: Resolver(trust_ranks(load_agencies())))
    stage.finish_loading()
    return stage


def test_a_snapshot_is_due_after_so_many_messages(tmp_path: Path) -> None:
    schedule = _schedule(tmp_path, Clock(), records=3)
    assert not schedule.due()  # nothing the newest snapshot does not cover
    for _ in range(2):
        schedule.count()
    assert not schedule.due()
    schedule.count()
    assert schedule.due()


def test_a_snapshot_is_due_after_so_long_with_at_least_one_message(tmp_path: Path) -> None:
    clock = Clock()
    schedule = _schedule(tmp_path, clock, records=1000, seconds=60.0)
    clock.now += 61
    assert not schedule.due()
    schedule.count()
    assert schedule.due()


def test_the_written_snapshot_covers_the_offset_and_the_count_starts_again(
    tmp_path: Path,
) -> None:
    clock = Clock()
    schedule = _schedule(tmp_path, clock, records=1)
    schedule.count()
    asyncio.run(schedule.write(_empty_stage(), 42))

    [written] = snapshot_files(tmp_path)
    header = read_header(written.path)
    assert (header.offset, header.topic_id) == (42, TOPIC_ID)
    assert schedule.since_snapshot == 0 and not schedule.due()


def test_after_a_rebuild_the_replayed_messages_count_and_the_clock_restarts(
    tmp_path: Path,
) -> None:
    clock = Clock()
    schedule = _schedule(tmp_path, clock, records=100, seconds=60.0)
    clock.now += 61
    schedule.rebuilt(5)
    assert schedule.since_snapshot == 5 and not schedule.due()  # the clock restarted
    clock.now += 61
    assert schedule.due()
    # a new stage (nothing to read): nothing uncovered, and the clock keeps running
    schedule.rebuilt(None)
    assert schedule.since_snapshot == 0
    schedule.count()
    assert schedule.due()


def test_a_failed_write_is_logged_not_raised_and_waits_its_share_of_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("in the way")
    clock = Clock()
    schedule = _schedule(not_a_folder, clock, records=1)
    schedule.count()
    with caplog.at_level(logging.ERROR, logger="tipsync.streams"):
        asyncio.run(schedule.write(_empty_stage(), 9))
    assert "could not be written" in caplog.text and "tsnap.internal.resolve" in caplog.text
    assert schedule.since_snapshot == 0


def test_the_topic_id_is_read_once_per_stage(tmp_path: Path) -> None:
    reads: list[str] = []

    def topic_id() -> str:
        reads.append(TOPIC_ID)
        return TOPIC_ID

    schedule = SnapshotSchedule(SnapshotPolicy(1, 60.0), tmp_path, "tsnap.internal.resolve",
                                topic_id, clock=Clock())
    for offset in (1, 2):
        schedule.count()
        asyncio.run(schedule.write(_empty_stage(), offset))
    assert len(reads) == 1  # the stage's topic, not a broker round trip per snapshot
    schedule.rebuilt(3)  # a new stage, perhaps of a recreated topic: its id is read again
    asyncio.run(schedule.write(_empty_stage(), 3))
    assert len(reads) == 2
    assert {read_header(found.path).topic_id for found in snapshot_files(tmp_path)} == {TOPIC_ID}


def test_a_topic_id_that_could_not_be_read_is_read_again_at_the_next_snapshot(
    tmp_path: Path,
) -> None:
    answers: list[str | None] = [None, TOPIC_ID]
    schedule = SnapshotSchedule(SnapshotPolicy(1, 60.0), tmp_path, "tsnap.internal.resolve",
                                lambda: answers.pop(0), clock=Clock())
    asyncio.run(schedule.write(_empty_stage(), 1))
    asyncio.run(schedule.write(_empty_stage(), 2))
    newest = snapshot_files(tmp_path)[0]
    assert (newest.offset, read_header(newest.path).topic_id) == (2, TOPIC_ID)
    assert answers == []
