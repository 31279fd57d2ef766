"""The order of the sink's writes while the next batch is prepared (sinks/consumer.py): one
batch in flight; a failed one retried before the next is handed over; a fenced one, or a
rebalance, drops what was read before. Pure: stand-ins for the writer and the consumer."""

from __future__ import annotations

import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition

from schemas.config import Settings
from sinks import store
from sinks.batch import Message, PreparedBatch
from sinks.consumer import ReconciledSink, SinkOptions
from sinks.writer import Committed, TransientFailure

T0 = ("t", 0)


class _Writer:
    """Each write ends at once with the next outcome given (an exception or committed)."""

    def __init__(self, *outcomes: BaseException | None) -> None:
        self.outcomes = list(outcomes)
        self.writes: list[tuple[PreparedBatch, list[store.OffsetAdvance]]] = []
        self.stored: dict[tuple[str, int], int] = {}

    def write(self, prepared: PreparedBatch, advances: list[store.OffsetAdvance]) -> Future[Any]:
        self.writes.append((prepared, advances))
        outcome: Future[Any] = Future()
        error = self.outcomes.pop(0)
        if error is None:
            outcome.set_result(Committed([], 0.01, time.time()))
        else:
            outcome.set_exception(error)
        return outcome

    def stored_offsets(self, topics: list[str]) -> dict[tuple[str, int], int]:
        return self.stored


class _Consumer:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.sought: list[tuple[str, int, int]] = []

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.calls.append("pause")

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.calls.append("resume")

    def poll(self, timeout: float) -> None:
        return None

    def seek(self, partition: TopicPartition) -> None:
        self.sought.append((partition.topic, partition.partition, partition.offset))

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.calls.append("commit")

    def unassign(self) -> None:
        self.calls.append("unassign")


def _sink(writer: _Writer) -> tuple[ReconciledSink, _Consumer]:
    settings = Settings(Path("/h"), Path("/c"), "127.0.0.1:30092", "https://127.0.0.1:18081",
                        "postgresql://x")
    options = SinkOptions(backoff_first_seconds=0.001, backoff_max_seconds=0.001)
    sink = ReconciledSink(settings, options, "postgresql://x")
    consumer = _Consumer()
    sink._writer = writer  # type: ignore[assignment]
    sink._consumer = consumer  # type: ignore[assignment]
    sink._stored = {T0: None}
    return sink, consumer


def _batch(first: int, last: int) -> tuple[list[Message], PreparedBatch]:
    messages = [Message("t", 0, offset, b"k", b"v") for offset in range(first, last + 1)]
    return messages, PreparedBatch(next_offsets={T0: last + 1})


def test_the_next_batch_moves_the_offsets_on_from_what_the_last_one_committed() -> None:
    writer = _Writer(None, None)
    sink, _ = _sink(writer)
    for first, last in ((0, 4), (5, 9)):
        messages, prepared = _batch(first, last)
        sink._start_writing(messages, 0, prepared)
        sink._finish_writing()

    assert [advances for _, advances in writer.writes] == [
        [store.OffsetAdvance("t", 0, None, 5)], [store.OffsetAdvance("t", 0, 5, 10)],
    ]
    assert sink._stored == {T0: 10}
    assert (sink.statistics.batches, sink.statistics.messages) == (2, 10)


def test_a_batch_that_failed_is_written_again_paused_before_the_next_is_handed_over() -> None:
    writer = _Writer(TransientFailure("PostgreSQL is unreachable"), None)
    sink, consumer = _sink(writer)
    messages, prepared = _batch(0, 4)
    sink._start_writing(messages, 0, prepared)

    sink._finish_writing()

    assert [written for written, _ in writer.writes] == [prepared, prepared]
    assert writer.writes[1][1] == [store.OffsetAdvance("t", 0, None, 5)]
    assert consumer.calls == ["pause", "resume", "commit"]
    assert sink._in_flight is None and sink._stored == {T0: 5}
    assert (sink.statistics.batches, sink.statistics.retries) == (1, 1)


def test_a_fenced_batch_re_reads_every_partition_and_drops_the_batch_read_meanwhile() -> None:
    writer = _Writer(store.OffsetFenceError("another sink wrote it"))
    writer.stored = {T0: 3}
    sink, consumer = _sink(writer)
    messages, prepared = _batch(0, 4)
    sink._start_writing(messages, 0, prepared)

    sink._finish_writing()

    assert consumer.sought == [("t", 0, 3)] and sink._stored == {T0: 3}
    # The loop hands a prepared batch over only if it was read in the current generation.
    assert sink._generation != 0
    assert sink.statistics.batches == 0


def test_a_rebalance_waits_for_the_write_in_flight_and_counts_it_when_it_committed() -> None:
    writer = _Writer(None)
    sink, consumer = _sink(writer)
    messages, prepared = _batch(0, 4)
    sink._start_writing(messages, 0, prepared)

    sink._on_revoke(consumer, [TopicPartition("t", 0)])  # type: ignore[arg-type]

    assert sink.statistics.batches == 1 and consumer.calls == ["commit", "unassign"]
    assert sink._in_flight is None and sink._stored == {}


def test_a_rebalance_drops_a_write_that_failed_instead_of_retrying_it() -> None:
    writer = _Writer(TransientFailure("PostgreSQL is unreachable"))
    sink, consumer = _sink(writer)
    messages, prepared = _batch(0, 4)
    sink._start_writing(messages, 0, prepared)

    sink._on_revoke(consumer, [TopicPartition("t", 0)])  # type: ignore[arg-type]

    # Read again from the stored offsets by whoever is assigned the partition next.
    assert len(writer.writes) == 1 and sink.statistics.batches == 0
    assert consumer.calls == ["unassign"] and sink._generation == 1
