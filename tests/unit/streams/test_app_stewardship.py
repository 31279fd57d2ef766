"""Stewards' decisions through the stream app's pure parts: the contract model, the forwarder
(decisions to the resolve partition), the resolve stage (outputs at the decision's offset) and
its snapshot. No faust, no Kafka; all people synthetic."""

from __future__ import annotations

import asyncio
import io
import random
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fastavro
import pytest
from pydantic import ValidationError

from deploy.bench.resolve import checked_people
from schemas.catalogue import governed_schema
from schemas.dead_letters import read_dead_letter_headers
from schemas.errors import WireFormatError
from schemas.stewardship import StewardDecision, pair_id, pair_key, steward_decision
from schemas.topics import TopicNames
from streams.decoding import EventDecoder
from streams.metrics import StreamMetrics
from streams.outputs import DeadLetterSender
from streams.resolve import Resolver
from streams.resolve_stage import MAPPING, PERSON, ResolveStage, steward_key
from streams.snapshot import read_snapshot, write_snapshot
from streams.stewardship import StewardshipForwarder
from tests.unit.streams.test_ingest_handler import Message, Sent
from tests.unit.streams.test_snapshot import TRUST

TOPICS = TopicNames("tsteward")
SCHEMA = governed_schema("stewardship.decision")
DECIDED = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _encode(decision: StewardDecision) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, SCHEMA.parsed, decision.to_record())
    return buffer.getvalue()


def _deserializer(data: bytes, expected: str | None = None) -> Any:
    """Schemaless Avro of the governed schema (the wire format's header is serde's business)."""
    if data == b"garbage":
        raise WireFormatError("message does not start with the magic byte")
    assert expected in (None, "stewardship.decision")
    return SimpleNamespace(record=fastavro.schemaless_reader(io.BytesIO(data), SCHEMA.parsed,
                                                             None))


def test_a_decision_is_in_canonical_order_and_round_trips_through_avro() -> None:
    made = steward_decision("police-ctu:P-2", "immigration:I-1", "CANNOT_LINK", "A. Steward",
                            "different mothers", decided_at=DECIDED)
    assert (made.left.agency_id, made.right.agency_id) == ("immigration", "police-ctu")
    assert pair_key("police-ctu:P-2", "immigration:I-1") == "immigration:I-1|police-ctu:P-2"
    assert len(pair_id("police-ctu:P-2", "immigration:I-1")) == 12
    record = _deserializer(_encode(made)).record
    assert record["kind"] == "CANNOT_LINK" and record["decided_at"] == DECIDED
    with pytest.raises(ValidationError, match="canonical order"):
        StewardDecision(**{**made.model_dump(), "left": made.right, "right": made.left})
    with pytest.raises(ValueError, match="two different records"):
        steward_decision("police-ctu:P-2", "police-ctu:P-2", "MUST_LINK", "A. Steward")
    with pytest.raises(ValueError, match="source_record_id"):
        steward_decision("P-2", "police-ctu:P-3", "MUST_LINK", "A. Steward")


def _forwarder() -> tuple[StewardshipForwarder, Sent]:
    sent = Sent()
    ready = asyncio.Event()
    ready.set()
    forwarder = StewardshipForwarder(
        topics=TOPICS, send=sent, decoder=EventDecoder(_deserializer),
        dead_letter=DeadLetterSender(sent, TOPICS, StreamMetrics()), outputs_ready=ready,
    )
    return forwarder, sent


def test_the_forwarder_puts_decisions_on_the_resolve_partition_and_refuses_bad_ones() -> None:
    forwarder, sent = _forwarder()
    good = steward_decision("police-ctu:P-1", "immigration:I-1", "CANNOT_LINK", "A. Steward",
                            decided_at=DECIDED)
    pair = pair_key("police-ctu:P-1", "immigration:I-1").encode()
    topic = TOPICS.stewardship_decisions
    messages = [
        Message(topic, 0, 0, pair, _encode(good)),
        Message(topic, 0, 1, b"immigration:I-9|police-ctu:P-1", _encode(good)),  # wrong key
        Message(topic, 0, 2, pair, b"garbage"),
    ]
    for message in messages:
        asyncio.run(forwarder.forward_one(message))
    [forwarded] = sent.to(TOPICS.resolve)
    assert forwarded["key"] == steward_key(pair.decode()).encode() == b"steward:" + pair
    assert forwarded["value"] == _encode(good) and forwarded["partition"] == 0
    reasons = [read_dead_letter_headers(m["headers"])["tipsync.reason"]
               for m in sent.to(TOPICS.dlq("ingest"))]
    assert reasons == ["key_mismatch", "undecodable"]


def test_the_stage_publishes_what_a_decision_changes_at_its_offset_and_snapshots_keep_it(
    tmp_path: Path,
) -> None:
    stage = ResolveStage(lambda: Resolver(TRUST))
    events = list(checked_people(range(40), random.Random(3), 0.5))
    for offset, event in enumerate(events):
        stage.apply(event, golden_version=offset)
    resolver = stage.resolver
    together = next(members for members in resolver.clusters().values() if len(members) > 1)
    first, second = together[0], together[1]
    decision = _deserializer(_encode(steward_decision(
        first, second, "CANNOT_LINK", "A. Steward", decided_at=DECIDED))).record
    outputs = stage.apply_decision(decision, golden_version=500)
    assert resolver.person_of(*first.split(":", 1)) != resolver.person_of(*second.split(":", 1))
    assert {o.kind for o in outputs} >= {PERSON, MAPPING, "match_decision"}
    assert all(o.value is None or o.value.get("golden_version", 500) == 500 for o in outputs)
    assert stage.apply_decision(decision, golden_version=501) == []  # forwarded twice

    # the decision is held through a snapshot, and a stage loaded silently is the same
    written = write_snapshot(tmp_path, stage, offset=502, topic_id="t")
    _, loaded = read_snapshot(written.path, lambda state: Resolver.from_state(state, trust=TRUST))
    assert loaded.resolver.clusters() == resolver.clusters()
    assert loaded.resolver.stewardship.to_state() == resolver.stewardship.to_state()
    rebuilt = ResolveStage(lambda: Resolver(TRUST))
    rebuilt.load_decision(decision)  # before the records: the same view
    for event in events:
        rebuilt.load(event)
    assert rebuilt.resolver.clusters() == resolver.clusters()
