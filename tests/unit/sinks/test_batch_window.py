"""When the sink's batch closes early: every owned partition read to its known end."""

from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

import sinks.consumer as consumer_module
from schemas.config import Settings
from sinks.consumer import CAUGHT_UP_RECHECK_SECONDS, ReconciledSink, SinkOptions
from sinks.window import UNKNOWN, caught_up


def test_every_partition_at_its_high_watermark_is_caught_up() -> None:
    assert caught_up({("t", 0): 10, ("t", 1): 0}, {("t", 0): 10, ("t", 1): 0})


def test_one_partition_with_more_to_read_is_behind() -> None:
    assert not caught_up({("t", 0): 10, ("t", 1): 3}, {("t", 0): 10, ("t", 1): 4})


def test_a_partition_whose_end_is_not_known_yet_is_behind() -> None:
    assert not caught_up({("t", 0): 10}, {("t", 0): UNKNOWN})
    assert not caught_up({("t", 0): 10}, {})


def test_a_partition_without_a_known_position_is_behind() -> None:
    assert not caught_up({("t", 0): UNKNOWN}, {("t", 0): 5})


def test_owning_nothing_is_caught_up() -> None:
    assert caught_up({}, {})


# --- the collecting loop, with a stand-in for librdkafka's consumer --------------------------
# (a pure unit test: only the four calls _collect makes, and a clock the test controls)

class _Record:
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"v"


class _TrickleConsumer:
    """One message on t[0]; t[1]'s end becomes known a little after it (its first fetch
    response after an assignment), as on a broker under load."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.handed = False
        self.blocking_waits: list[float] = []

    def consume(self, num_messages: int, timeout: float) -> list[_Record]:
        if not self.handed:
            self.handed = True
            return [_Record(0)]
        if timeout > 0:
            self.blocking_waits.append(timeout)
            self.clock[0] += timeout
        return []

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(p.topic, p.partition, 1 if p.partition == 0 else UNKNOWN)
                for p in partitions]

    def get_watermark_offsets(self, partition: TopicPartition, cached: bool) -> tuple[int, int]:
        if partition.partition == 1 and self.clock[0] < 0.3:
            return UNKNOWN, UNKNOWN
        return 0, 1 if partition.partition == 0 else 0


def test_a_held_batch_closes_soon_after_a_partition_end_becomes_known(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The CI failure of session 5: t[1]'s end was unknown when the trickle's one message came,
    # and the loop then waited out the whole 30 s window for another message.
    clock = [0.0]
    monkeypatch.setattr(consumer_module.time, "monotonic", lambda: clock[0])
    settings = Settings(Path("/h"), Path("/c"), "127.0.0.1:30092", "https://127.0.0.1:18081",
                        "postgresql://x")
    sink = ReconciledSink(settings, SinkOptions(batch_seconds=30.0), "postgresql://x")
    stand_in = _TrickleConsumer(clock)
    sink._consumer = stand_in  # type: ignore[assignment]
    sink._stored = {("t", 0): None, ("t", 1): None}

    _, messages = sink._collect(lambda: False)

    assert [m.offset for m in messages] == [0]
    assert clock[0] < 1.0, stand_in.blocking_waits
    assert max(stand_in.blocking_waits) <= CAUGHT_UP_RECHECK_SECONDS
