"""Ingest's handler on one message at a time, without faust or Kafka: a dict as the table's
store, a list collecting what would be sent, a deserializer that hands back the event."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from schemas.dead_letters import read_dead_letter_headers
from schemas.errors import WireFormatError
from schemas.examples import example_event, example_uuid
from schemas.topics import TopicNames
from streams.decoding import EventDecoder
from streams.ingest import Held, entity_golden_id
from streams.ingest_handler import IngestHandler
from streams.metrics import StreamMetrics
from streams.outputs import DeadLetterSender

TOPICS = TopicNames("tingest")
POLICE = "police-ctu"
CHANGELOG = "tingest.internal.stream-ingest_held-changelog"


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class FakeTable:
    data: dict[str, Any] = field(default_factory=dict)


class Sent(list[dict[str, Any]]):
    async def __call__(self, topic: str, key: bytes | None, value: bytes | None,
                       partition: int | None = None,
                       headers: list[tuple[str, bytes]] | None = None,
                       on_delivered: Any = None) -> None:
        self.append({"topic": topic, "key": key, "value": value, "partition": partition,
                     "headers": headers})

    def to(self, topic: str) -> list[dict[str, Any]]:
        return [message for message in self if message["topic"] == topic]


def _deserializer(data: bytes, expected: str | None = None) -> Any:
    """The test's wire format: JSON, with b'garbage' failing like bytes of another format."""
    if data == b"garbage":
        raise WireFormatError("message does not start with the magic byte")
    return SimpleNamespace(record=json.loads(data))


def _handler() -> tuple[IngestHandler, FakeTable, Sent, StreamMetrics]:
    table, sent, metrics = FakeTable(), Sent(), StreamMetrics()
    ready = asyncio.Event()
    ready.set()
    handler = IngestHandler(
        topics=TOPICS, held=table, changelog_topic=CHANGELOG, send=sent,
        decoder=EventDecoder(_deserializer),
        serializers=lambda entity: lambda value: json.dumps(value, default=str).encode(),
        dead_letter=DeadLetterSender(sent, TOPICS, metrics), metrics=metrics,
        outputs_ready=ready,
    )
    return handler, table, sent, metrics


def _message(entity: str, record: str, offset: int, **envelope: Any) -> Message:
    event = example_event(entity, POLICE, record, **envelope)
    return Message(TOPICS.agency(POLICE, entity), 2, offset, f"{POLICE}:{record}".encode(),
                   json.dumps(event, default=str).encode())


def _count(metrics: StreamMetrics, name: str, entity: str) -> float:
    value = metrics.registry.get_sample_value(
        f"tipsync_stream_{name}_total", {"agency": POLICE, "entity": entity})
    return value or 0.0


def test_an_accepted_case_is_published_golden_and_held_with_its_changelog() -> None:
    handler, table, sent, metrics = _handler()
    asyncio.run(handler.ingest_one(
        _message("case", "C-1", 0, event_id=example_uuid("c1"), source_version=3)))

    [golden] = sent.to(TOPICS.reconciled("case"))
    assert golden["key"] == entity_golden_id("case", POLICE, "C-1").encode()
    held = Held.from_json(table.data["case:police-ctu:C-1"])
    assert held is not None and held.source_version == 3
    [changelog] = sent.to(CHANGELOG)
    # the changelog goes to the input's partition, JSON like faust's own table writes
    assert changelog["partition"] == 2
    assert json.loads(changelog["key"]) == "case:police-ctu:C-1"
    assert json.loads(changelog["value"]) == table.data["case:police-ctu:C-1"]
    assert _count(metrics, "events_out", "case") == 1


def test_a_person_goes_to_the_resolve_topic_as_it_came_under_its_held_key() -> None:
    handler, _, sent, _ = _handler()
    message = _message("person", "P-1", 0)
    asyncio.run(handler.ingest_one(message))
    [to_resolve] = sent.to(TOPICS.resolve)
    assert (to_resolve["key"], to_resolve["value"]) == (b"person:police-ctu:P-1", message.value)


def test_a_replay_and_a_stale_version_are_dropped_and_counted() -> None:
    handler, table, sent, metrics = _handler()
    first = _message("case", "C-2", 0, event_id=example_uuid("first"), source_version=5)
    asyncio.run(handler.ingest_one(first))
    stale = _message("case", "C-2", 2, event_id=example_uuid("older"), source_version=4)
    asyncio.run(handler.ingest_one(stale))
    asyncio.run(handler.ingest_one(stale))  # the stale event again: a replay, dropped

    assert len(sent.to(TOPICS.reconciled("case"))) == 1
    assert _count(metrics, "replays_dropped", "case") == 1
    assert _count(metrics, "stale_dropped", "case") == 1
    # the stale event's id is remembered too, so its replay is a replay
    held = Held.from_json(table.data["case:police-ctu:C-2"])
    assert held is not None and held.source_version == 5
    assert example_uuid("older") in held.event_ids


def test_a_replay_of_the_latest_accepted_version_is_sent_again_not_held_again() -> None:
    """Its output may not have reached Kafka before the worker died (issue 13): sent again,
    identical; the table does not change and an older or stale event stays dropped."""
    handler, table, sent, metrics = _handler()
    v1 = _message("case", "C-5", 0, event_id=example_uuid("v1"), source_version=1)
    v2 = _message("case", "C-5", 1, event_id=example_uuid("v2"), source_version=2)
    # a different change claiming the version already taken: stale, its id remembered last
    rival = _message("case", "C-5", 2, event_id=example_uuid("rival"), source_version=2)
    for message in (v1, v2, rival):
        asyncio.run(handler.ingest_one(message))
    held_before = table.data["case:police-ctu:C-5"]
    changelog_before = len(sent.to(CHANGELOG))
    for message in (v1, v2, rival):  # all three again, as after a restart
        asyncio.run(handler.ingest_one(message))

    goldens = sent.to(TOPICS.reconciled("case"))
    assert len(goldens) == 3  # v1, v2, and v2 again
    assert goldens[2] == goldens[1]
    assert table.data["case:police-ctu:C-5"] == held_before
    assert len(sent.to(CHANGELOG)) == changelog_before
    assert _count(metrics, "replays_dropped", "case") == 2  # v1 and the rival
    assert _count(metrics, "stale_dropped", "case") == 1


class WorkerKilled(BaseException):
    """The worker process dies (SIGKILL): nothing of the handler runs on."""


def test_a_worker_killed_after_the_changelog_but_before_the_forward_forwards_on_restart(
) -> None:
    """Issue 13: the table's store (RocksDB on local disk) and its changelog message outlive
    a SIGKILL that the forward to the resolve topic did not; the input was not committed, so
    the restarted worker consumes it again over the same table and must forward it."""
    table = FakeTable()
    delivered = Sent()

    async def dies_before_the_forward(topic: str, key: bytes | None, value: bytes | None,
                                      partition: int | None = None,
                                      headers: list[tuple[str, bytes]] | None = None,
                                      on_delivered: Any = None) -> None:
        if topic != CHANGELOG:
            raise WorkerKilled
        await delivered(topic, key, value, partition, headers, on_delivered)

    message = _message("person", "P-9", 4, event_id=example_uuid("p9"), source_version=1)
    killed, _, _, _ = _handler()
    killed.held, killed._send = table, dies_before_the_forward
    with contextlib.suppress(WorkerKilled):
        asyncio.run(killed.ingest_one(message))
    assert delivered.to(CHANGELOG) and not delivered.to(TOPICS.resolve)
    assert "person:police-ctu:P-9" in table.data  # the store survived the kill

    restarted, _, sent, _ = _handler()
    restarted.held = table  # the same local store, restored
    asyncio.run(restarted.ingest_one(message))
    [to_resolve] = sent.to(TOPICS.resolve)
    assert (to_resolve["key"], to_resolve["value"]) == (b"person:police-ctu:P-9", message.value)


def test_bytes_that_do_not_decode_become_a_dead_letter_and_nothing_is_held() -> None:
    handler, table, sent, metrics = _handler()
    message = Message(TOPICS.agency(POLICE, "case"), 1, 7, b"police-ctu:C-3", b"garbage")
    asyncio.run(handler.ingest_one(message))

    [letter] = sent.to(TOPICS.dlq("ingest"))
    assert (letter["key"], letter["value"]) == (message.key, message.value)
    headers = read_dead_letter_headers(letter["headers"])
    assert headers["tipsync.reason"] == "undecodable"
    assert headers["tipsync.source_offset"] == "7"
    assert table.data == {}
    assert metrics.registry.get_sample_value(
        "tipsync_stream_dead_letters_total", {"stage": "ingest", "reason": "undecodable"}
    ) == 1


def test_an_unexpected_exception_is_a_processing_error_and_the_stream_goes_on() -> None:
    handler, table, sent, _ = _handler()
    handler._serializers = lambda entity: _raise  # type: ignore[assignment]
    asyncio.run(handler.ingest_one(_message("case", "C-4", 0)))

    [letter] = sent.to(TOPICS.dlq("ingest"))
    headers = read_dead_letter_headers(letter["headers"])
    assert headers["tipsync.reason"] == "processing_error"
    assert "Odessa" not in headers["tipsync.detail"]  # an exception's text stays out
    # the table moves forward only once the output is ready
    assert table.data == {}


def _raise(value: Any) -> bytes:
    raise ValueError("cannot serialize the case of Odessa")
