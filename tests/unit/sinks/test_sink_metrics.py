"""The sink's metrics without Kafka or PostgreSQL: reason codes from the sentences the sink
really writes, what a committed batch counts, the exposed names, the port setting."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client import generate_latest

from deploy.operations.freshness import FRESHNESS_BUCKETS as OPERATOR_FRESHNESS_BUCKETS
from deploy.operations.metric_names import SINK
from schemas import build_info
from schemas.dead_letters import REASONS, DeadLetter
from schemas.registry import SchemaRegistry
from schemas.serde import AvroDeserializer
from sinks.batch import Message, PreparedBatch, Rejection, prepare_batch
from sinks.consumer import avro_decoder
from sinks.metrics import (
    DEFAULT_METRICS_PORT,
    FRESHNESS_BUCKETS,
    METRICS_PORT_VARIABLE,
    BatchReport,
    SinkMetrics,
    batch_report,
    metrics_port,
)
from sinks.records import GoldenRows
from sinks.store import Written
from sinks.writer import refusal

PERSON_TOPIC = "tip.reconciled.person"
DECISION_TOPIC = "tip.reconciled.match_decision"
TOPICS = {PERSON_TOPIC: "person", DECISION_TOPIC: "match_decision"}
GOLDEN_ID = "11111111-1111-4111-8111-111111111111"
OTHER_ID = "22222222-2222-4222-8222-222222222222"


def decode_json(message: Message, entity: str) -> Mapping[str, Any] | None:
    return None if message.value is None else json.loads(message.value)


def reasons_of(messages: list[Message], decode: Any = decode_json) -> list[str]:
    return [rejection.letter.reason
            for rejection in prepare_batch(messages, TOPICS, decode).rejections]


# --- reason codes, from the code that writes each sentence ----------------------------------


def test_a_message_without_a_key_or_with_a_key_that_is_no_uuid_is_a_bad_key():
    value = json.dumps({"golden_version": 1}).encode()
    assert reasons_of([
        Message(PERSON_TOPIC, 0, 0, None, value),
        Message(PERSON_TOPIC, 0, 1, b"SYN-1", value),
    ]) == ["bad_key", "bad_key"]


def test_a_record_whose_id_is_not_its_key_is_a_key_mismatch():
    value = json.dumps({"person_id": OTHER_ID, "golden_version": 1}).encode()
    assert reasons_of([Message(PERSON_TOPIC, 0, 0, GOLDEN_ID.encode(), value)]) == [
        "key_mismatch"
    ]


@pytest.fixture
def registry() -> Iterator[SchemaRegistry]:
    # Never asked: the wire-format checks fail before a schema is looked up.
    with SchemaRegistry("http://127.0.0.1:9/apis/ccompat/v7") as client:
        yield client


def test_bytes_that_are_not_wire_format_avro_are_undecodable(registry: SchemaRegistry):
    decode = avro_decoder(AvroDeserializer(registry))
    assert reasons_of([
        Message(PERSON_TOPIC, 0, 0, GOLDEN_ID.encode(), b"bad"),
        Message(PERSON_TOPIC, 0, 1, OTHER_ID.encode(), b"not avro at all"),
    ], decode) == ["undecodable", "undecodable"]


def test_a_record_the_store_cannot_hold_is_an_invalid_record():
    value = json.dumps({"person_id": GOLDEN_ID, "golden_version": -1}).encode()
    assert reasons_of([Message(PERSON_TOPIC, 0, 0, GOLDEN_ID.encode(), value)]) == [
        "invalid_record"
    ]
    assert reasons_of([Message(DECISION_TOPIC, 0, 0, b"decision", None)]) == ["invalid_record"]


def test_a_row_postgresql_refused_is_refused_by_postgresql():
    assert refusal(psycopg.errors.CheckViolation()).reason == "refused_by_postgresql"


def test_every_reason_code_of_the_sink_is_described():
    # DeadLetter refuses a code the one format does not describe; these are the sink's
    sink_codes = {"bad_key", "key_mismatch", "undecodable", "invalid_record",
                  "refused_by_postgresql"}
    assert sink_codes <= set(REASONS)


# --- what a committed batch counts ------------------------------------------------------------


def person_change(golden_id: str) -> GoldenRows:
    return GoldenRows("person", golden_id, "live", 3)


def test_a_batch_report_counts_events_rows_stale_changes_dead_letters_and_ages():
    messages = [Message(PERSON_TOPIC, 0, offset, GOLDEN_ID.encode(), b"{}") for offset in range(4)]
    messages.append(Message(DECISION_TOPIC, 0, 0, b"decision", b"{}"))
    prepared = PreparedBatch(
        changes={"person": [person_change(GOLDEN_ID), person_change(OTHER_ID)]},
        match_decisions=[("row",)],
        rejections=[Rejection(messages[0], DeadLetter("bad_key", "the message key is not a UUID"))],
    )
    written = [
        ("person", Written(2, 1, {"person": 1, "person_source": 2}, (1000.0, 1030.0))),
        ("match_decision", Written(1, 0, {"match_decision": 0})),
    ]
    report = batch_report(messages, TOPICS, prepared, written, 0.25, committed_at=1010.0)
    assert report == BatchReport(
        events_in={(PERSON_TOPIC, "person"): 4, (DECISION_TOPIC, "match_decision"): 1},
        rows={("person", "person"): 1, ("person", "person_source"): 2},
        # A match decision already stored is not a stale version: it has none.
        stale_dropped={"person": 1},
        dead_letters={"bad_key": 1},
        # An event_time after the commit (the agency's clock ahead) counts as age 0.
        freshness={"person": [10.0, 0.0]},
        seconds=0.25,
    )


def test_writes_of_one_entity_in_halves_add_up():
    prepared = PreparedBatch(changes={"person": [person_change(GOLDEN_ID)]})
    written = [("person", Written(4, 3, {"person": 3}, (5.0,))),
               ("person", Written(4, 4, {"person": 4}, (6.0,)))]
    report = batch_report([], TOPICS, prepared, written, 1.0, committed_at=10.0)
    assert report.rows == {("person", "person"): 7}
    assert report.stale_dropped == {"person": 1}
    assert report.freshness == {"person": [5.0, 4.0]}


def test_the_sink_serves_exactly_the_documented_names():
    metrics = SinkMetrics()
    metrics.record(BatchReport(
        events_in={(PERSON_TOPIC, "person"): 3}, rows={("person", "person"): 2},
        stale_dropped={"person": 1}, dead_letters={"undecodable": 1},
        freshness={"person": [1.5, 40.0]}, seconds=0.2,
    ))
    text = generate_latest(metrics.registry).decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
             if line and not line.startswith("#")}
    # prometheus-client's *_created companions are not separate metrics.
    exposed = {name for name in names if not name.endswith("_created")}
    assert exposed == {series for metric in SINK for series in metric.series()}
    assert 'tipsync_sink_events_in_total{entity="person",topic="tip.reconciled.person"} 3.0' in text
    assert 'tipsync_sink_freshness_seconds_bucket{entity="person",le="2.0"} 1.0' in text
    assert 'tipsync_sink_freshness_seconds_count{entity="person"} 2.0' in text
    assert "tipsync_sink_batch_seconds_count 1.0" in text


def test_the_documented_labels_are_the_served_ones():
    metrics = SinkMetrics()
    served = {
        "tipsync_sink_events_in_total": metrics.events_in._labelnames,
        "tipsync_sink_rows_total": metrics.rows._labelnames,
        "tipsync_sink_stale_dropped_total": metrics.stale_dropped._labelnames,
        "tipsync_sink_dead_letters_total": metrics.dead_letters._labelnames,
        "tipsync_sink_batch_seconds": metrics.batch_seconds._labelnames,
        "tipsync_sink_freshness_seconds": metrics.freshness_seconds._labelnames,
        "tipsync_build_info": build_info.LABELS,
    }
    assert served == {metric.name: metric.labels for metric in SINK}


def test_freshness_buckets_are_the_operators():
    assert FRESHNESS_BUCKETS == OPERATOR_FRESHNESS_BUCKETS


# --- the port -------------------------------------------------------------------------------


def test_the_port_comes_from_the_option_then_the_environment_then_the_default():
    assert metrics_port(None, {}) == DEFAULT_METRICS_PORT
    assert metrics_port(None, {METRICS_PORT_VARIABLE: "19200"}) == 19200
    assert metrics_port(19300, {METRICS_PORT_VARIABLE: "19200"}) == 19300
    assert metrics_port(0, {}) is None
    assert metrics_port(None, {METRICS_PORT_VARIABLE: "0"}) is None


def test_a_port_that_is_not_a_number_or_out_of_range_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="TIPSYNC_SINK_METRICS_PORT='nineteen' is not a port"):
        metrics_port(None, {METRICS_PORT_VARIABLE: "nineteen"})
    with pytest.raises(ValueError, match="metrics port 70000 is outside 0..65535"):
        metrics_port(70000, {})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serving_answers_on_loopback_and_stops():
    metrics = SinkMetrics()
    port = free_port()
    stop = metrics.serve(port)
    assert stop is not None
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert "tipsync_sink_batch_seconds_count 0.0" in response.text
    finally:
        stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)


def test_a_port_in_use_leaves_the_sink_running_without_an_endpoint_and_says_why(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="tipsync.sink"):
            assert SinkMetrics().serve(port) is None
    assert f"cannot listen on 127.0.0.1:{port}" in caplog.text
    assert "--metrics-port" in caplog.text
