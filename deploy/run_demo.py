"""``tipsync demo``: what ``make demo`` runs.

Until the full multi-agency demo lands, this is the smoke pipeline: one synthetic Avro event
is published to Kafka through the registry, read back, and written to PostgreSQL, proving
that every part of the local stack talks to the others.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

import psycopg
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    record_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from deploy.stack.layout import StackError
from deploy.stack.stack import LocalStack
from schemas.config import Settings, load_settings

SMOKE_TOPIC = "tip.internal.smoke"
SMOKE_SCHEMA = {
    "type": "record",
    "name": "SmokeEvent",
    "namespace": "tipsync.internal",
    "doc": "A synthetic heartbeat proving the local stack end to end; no personal data.",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "sent_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "note", "type": "string"},
    ],
}


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = subparsers.add_parser("demo", help="start the stack and run the demo pipeline")
    demo.set_defaults(func=run_demo)


def run_smoke_pipeline(settings: Settings) -> dict[str, object]:
    """Avro event -> Kafka -> back -> PostgreSQL; returns what was written."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    if SMOKE_TOPIC not in admin.list_topics(timeout=10).topics:
        futures = admin.create_topics([NewTopic(SMOKE_TOPIC, 1, 1)])
        futures[SMOKE_TOPIC].result()

    registry = SchemaRegistryClient({"url": settings.registry_url})
    subject = "tipsync.internal.SmokeEvent"
    registry.register_schema(subject, Schema(json.dumps(SMOKE_SCHEMA), "AVRO"))
    context = SerializationContext(SMOKE_TOPIC, MessageField.VALUE)
    serializer = AvroSerializer(
        registry, json.dumps(SMOKE_SCHEMA),
        conf={
            "auto.register.schemas": False,
            "use.latest.version": True,
            "subject.name.strategy": record_subject_name_strategy,
        },
    )
    event_id = str(uuid.uuid4())
    event = {"event_id": event_id, "sent_at": int(time.time() * 1000),
             "note": "smoke test"}
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True,
         "acks": "all"}
    )
    producer.produce(SMOKE_TOPIC, key=event_id, value=serializer(event, context))
    if producer.flush(30) != 0:
        raise StackError("the smoke event was not acknowledged by Kafka within 30s")

    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"smoke-{uuid.uuid4()}",
         "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    consumer.subscribe([SMOKE_TOPIC])
    deserializer = AvroDeserializer(registry)
    received = None
    deadline = time.monotonic() + 30
    while received is None and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None or message.error():
            continue
        decoded = deserializer(message.value(), context)
        if decoded["event_id"] == event["event_id"]:
            received = decoded
    consumer.close()
    if received is None:
        raise StackError("the smoke event did not come back from Kafka within 30s")

    with psycopg.connect(settings.database_url) as connection:
        connection.execute(
            "create table if not exists smoke_event (event_id uuid primary key, "
            "sent_at timestamptz not null, note text not null)"
        )
        connection.execute(
            "insert into smoke_event values (%s, %s, %s) on conflict do nothing",
            (received["event_id"], received["sent_at"], received["note"]),
        )
        stored = connection.execute(
            "select count(*) from smoke_event where event_id = %s", (received["event_id"],)
        ).fetchone()
    return {"event_id": received["event_id"], "stored_rows": stored[0] if stored else 0}


def run_demo(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        report = LocalStack(settings).up()
        print(f"stack up in {report.seconds:.1f}s")
        result = run_smoke_pipeline(settings)
    except StackError as error:
        print(f"tipsync demo: {error}")
        return 1
    print(
        "smoke pipeline: Avro event published, read back through the registry and stored "
        f"in PostgreSQL ({result['stored_rows']} row for event {result['event_id']})"
    )
    return 0
