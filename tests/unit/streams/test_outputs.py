"""Resolve's outputs and the dead letters, sent through a list instead of Kafka: the topic of
each output, its encoding and its counters; a dead letter keeps the message as it came."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from schemas.dead_letters import DeadLetter, read_dead_letter_headers
from schemas.topics import TopicNames
from streams.metrics import StreamMetrics
from streams.outputs import DeadLetterSender, ResolvePublisher
from streams.resolve_stage import MAPPING, Output
from tests.unit.streams.test_ingest_handler import Message

TOPICS = TopicNames("touts")


class Sent(list[tuple[str, bytes | None, bytes | None, Any]]):
    async def __call__(self, topic: str, key: bytes | None, value: bytes | None,
                       partition: int | None = None,
                       headers: list[tuple[str, bytes]] | None = None,
                       on_delivered: Any = None) -> None:
        self.append((topic, key, value, headers))


def test_outputs_go_to_their_topics_serialized_and_counted() -> None:
    sent, metrics = Sent(), StreamMetrics()
    serialized: list[str] = []

    def serializers(kind: str) -> Any:
        serialized.append(kind)
        return lambda value: f"avro:{kind}".encode()

    publish = ResolvePublisher(sent, TOPICS, serializers, metrics)
    asyncio.run(publish(Output("person", "g1", {"golden_id": "g1", "merged_into": "g2"})))
    asyncio.run(publish(Output("person", "g3", {"golden_id": "g3"})))
    asyncio.run(publish(Output("person", "g4", None)))
    asyncio.run(publish(Output(MAPPING, "police-ctu:P-1", {"golden_id": "g1"})))
    asyncio.run(publish(Output("match_decision", "d1", {"decision": "match"})))

    assert [(topic, key) for topic, key, _, _ in sent] == [
        (TOPICS.reconciled("person"), b"g1"), (TOPICS.reconciled("person"), b"g3"),
        (TOPICS.reconciled("person"), b"g4"), (TOPICS.person_mapping, b"police-ctu:P-1"),
        (TOPICS.reconciled("match_decision"), b"d1"),
    ]
    assert sent[0][2] == b"avro:person"
    assert sent[2][2] is None  # a tombstone
    assert json.loads(sent[3][2] or b"") == {"golden_id": "g1"}  # the mapping is JSON
    assert serialized == ["person", "match_decision"]  # made once per output
    sample = metrics.registry.get_sample_value
    assert sample("tipsync_stream_resolve_outputs_total", {"output": "person"}) == 3
    assert sample("tipsync_stream_merges_total", {}) == 1
    assert sample("tipsync_stream_match_decisions_total", {"decision": "match"}) == 1


def test_a_dead_letter_keeps_the_message_and_says_why_and_where() -> None:
    sent, metrics = Sent(), StreamMetrics()
    dead_letter = DeadLetterSender(sent, TOPICS, metrics)
    message = Message(TOPICS.resolve, 0, 11, b"person:police-ctu:P-9", b"\x00bytes")
    asyncio.run(dead_letter("resolve", message, DeadLetter("unresolvable", "no names")))

    [(topic, key, value, headers)] = sent
    assert (topic, key, value) == (TOPICS.dlq("resolve"), message.key, message.value)
    read = read_dead_letter_headers(headers)
    assert (read["tipsync.stage"], read["tipsync.reason"], read["tipsync.detail"]) == (
        "resolve", "unresolvable", "no names")
    assert (read["tipsync.source_topic"], read["tipsync.source_offset"]) == (TOPICS.resolve, "11")
    assert metrics.registry.get_sample_value(
        "tipsync_stream_dead_letters_total", {"stage": "resolve", "reason": "unresolvable"}
    ) == 1
