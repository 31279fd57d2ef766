"""Resolve's handler on the messages faust hands it, without faust or Kafka: a list as the
resolve topic, a stage that notes what it holds, a list collecting what would be published.

faust does not hand every message of the resolve partition once and in order: after a
rebalance it may hand one again (a seek back to the committed offset), or hand a message past
ones it dropped (a batch fetched before that seek and delivered after it moves its read
offset forward, and the messages fetched again are dropped as already read, and committed
through its gap tracking). A worker may also be handed the partition past messages whose
outputs were never delivered. Every message must still be resolved once, in order, and its
outputs published: a message only loaded into the stage (as a rebuild does) publishes
nothing, and its person or link never reaches the store (the fault suite lost 66 person and
51 link records that way)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from streams.metrics import StreamMetrics
from streams.resolve_handler import ResolveHandler
from streams.resolve_stage import Output
from streams.snapshot import SnapshotPolicy
from streams.snapshot_schedule import SnapshotSchedule
from tests.unit.streams.test_ingest_handler import Message

TOPIC = "tresolve.internal.resolve"


def _topic(count: int) -> list[Message]:
    return [Message(TOPIC, 0, offset, f"person:police-ctu:{offset}".encode(), b"{}")
            for offset in range(count)]


@dataclass
class FakeStage:
    """Holds the offsets loaded (silently, by a rebuild) and applied (with outputs)."""

    loaded: list[int]
    applied: list[int] = field(default_factory=list)
    erased_while_loading: int = 0

    def apply(self, event: Any, golden_version: int) -> list[Output]:
        assert golden_version not in self.loaded + self.applied, "resolved twice"
        self.applied.append(golden_version)
        return [Output("person", str(golden_version), {"golden_version": golden_version})]


class FakeDecoder:
    async def resolve_event(self, key: bytes, value: bytes | None) -> Any:
        return SimpleNamespace(entity="person", key=key, op="UPSERT")


@dataclass
class World:
    topic: list[Message]
    committed: int | None = None
    stages: list[FakeStage] = field(default_factory=list)
    rebuilt_until: list[int] = field(default_factory=list)
    published: list[int] = field(default_factory=list)

    async def rebuild(self, until: int) -> tuple[FakeStage, int | None]:
        self.rebuilt_until.append(until)
        stage = FakeStage(loaded=list(range(until)))
        self.stages.append(stage)
        return stage, until or None

    async def read(self, start: int, until: int) -> list[Message]:
        return [message for message in self.topic if start <= message.offset < until]

    async def committed_offset(self) -> int | None:
        return self.committed

    async def publish(self, output: Output) -> None:
        self.published.append(int(output.key))


def _handler(world: World, tmp_path: Path) -> ResolveHandler:
    ready = asyncio.Event()
    ready.set()

    async def no_model_change(stage: Any, message: Any) -> None:
        raise AssertionError("no model change in these tests")

    async def no_dead_letter(stage: str, message: Any, letter: Any) -> None:
        raise AssertionError(f"dead letter {letter}")

    return ResolveHandler(
        rebuild=world.rebuild,  # type: ignore[arg-type]
        change_model=no_model_change,
        snapshots=SnapshotSchedule(SnapshotPolicy(every_records=0), tmp_path, TOPIC,
                                   lambda: None),
        decoder=FakeDecoder(),  # type: ignore[arg-type]
        publish=world.publish,  # type: ignore[arg-type]
        dead_letter=no_dead_letter,  # type: ignore[arg-type]
        metrics=StreamMetrics(), outputs_ready=ready, read=world.read,
        committed=world.committed_offset,
    )


def _hand(handler: ResolveHandler, world: World, offsets: list[int]) -> None:
    async def run() -> None:
        for offset in offsets:
            await handler.resolve_one(world.topic[offset])
    asyncio.run(run())


def test_messages_faust_skipped_are_resolved_and_published_before_the_one_handed(
    tmp_path: Path,
) -> None:
    world = World(_topic(10))
    handler = _handler(world, tmp_path)
    _hand(handler, world, [0, 1, 2, 6, 7])
    assert world.published == [0, 1, 2, 3, 4, 5, 6, 7]
    assert world.stages[-1].applied == [0, 1, 2, 3, 4, 5, 6, 7]


def test_a_worker_handed_the_partition_past_the_committed_offset_publishes_from_there(
    tmp_path: Path,
) -> None:
    # The group committed 3 (outputs of 0-2 delivered); faust hands 6 first: 3-5 must not
    # only be loaded into the stage, their outputs may never have been delivered.
    world = World(_topic(10), committed=3)
    handler = _handler(world, tmp_path)
    _hand(handler, world, [6, 7])
    assert world.rebuilt_until == [3]
    assert world.published == [3, 4, 5, 6, 7]


def test_a_message_handed_again_is_passed_over(tmp_path: Path) -> None:
    world = World(_topic(10))
    handler = _handler(world, tmp_path)
    _hand(handler, world, [0, 1, 2, 1, 2, 3])
    assert world.published == [0, 1, 2, 3]


def test_the_first_offset_handed_bounds_the_rebuild_when_the_commit_is_ahead(
    tmp_path: Path,
) -> None:
    world = World(_topic(10), committed=8)
    handler = _handler(world, tmp_path)
    _hand(handler, world, [5, 6])
    assert world.rebuilt_until == [5]
    assert world.published == [5, 6]


def test_after_a_revoke_the_stage_is_rebuilt_up_to_the_committed_offset(
    tmp_path: Path,
) -> None:
    world = World(_topic(10))
    handler = _handler(world, tmp_path)
    _hand(handler, world, [0, 1, 2, 3])
    handler.forget()
    world.committed = 2  # another worker's commit, or ours before the revoke
    _hand(handler, world, [4, 5])
    assert world.rebuilt_until == [0, 2]
    assert world.published == [0, 1, 2, 3, 2, 3, 4, 5]  # 2 and 3 again: idempotent downstream


def test_what_resolve_read_past_faust_is_acknowledged_to_faust(tmp_path: Path) -> None:
    """So faust's commit moves past it (streams.input_gaps.FaustAcknowledger): committed 3,
    handed 6 first, then 7; 3-5 are read, resolved, and acknowledged once."""
    world = World(_topic(10), committed=3)
    handler = _handler(world, tmp_path)
    acknowledged: list[tuple[tuple[str, int], int, int]] = []

    async def acknowledge(partition: tuple[str, int], first: int, until: int) -> None:
        acknowledged.append((partition, first, until))

    handler._acknowledge = acknowledge
    _hand(handler, world, [6, 7])
    assert acknowledged == [((TOPIC, 0), 3, 6)]
