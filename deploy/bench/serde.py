"""``tipsync bench serde``: records per second of Avro encode and decode for a typical Person.

Compares our fastavro serde (schema parsed once, Confluent wire format) with confluent-kafka's
AvroSerializer/AvroDeserializer on the same registry, schema and record, in one process
pinned to one core. Prints figures; asserts nothing.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastavro

from schemas.catalogue import governed_schema
from schemas.client_config import ClientConfig
from schemas.examples import example_event
from schemas.serde import AvroDeserializer, AvroSerializer, SchemaRegistry
from schemas.topics import agency_topic


@dataclass(frozen=True)
class Measure:
    library: str
    operation: str
    records: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.records / self.seconds


def _time(function: Callable[[], Any], records: int) -> float:
    for _ in range(min(2000, records)):  # warm caches and the registry lookups
        function()
    started = time.perf_counter()
    for _ in range(records):
        function()
    return time.perf_counter() - started


def pin_to_one_core() -> str:
    """Pin this process to one CPU, so figures mean 'one core'; says which."""
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned (no sched_setaffinity on this platform)"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bench_serde(client: ClientConfig, records: int) -> tuple[list[Measure], int]:
    """Measure both libraries; returns the measures and the encoded size in bytes."""
    event = example_event("person")
    registry = SchemaRegistry(client.registry())
    serialize = AvroSerializer(registry, "person")
    deserialize = AvroDeserializer(registry)
    data = serialize(event)
    assert deserialize(data).record == event, "fastavro round trip changed the record"
    measures = [
        Measure(
            "fastavro (tipsync serde)", "encode", records, _time(lambda: serialize(event), records)
        ),
        Measure(
            "fastavro (tipsync serde)", "decode", records, _time(lambda: deserialize(data), records)
        ),
    ]
    measures += _bench_confluent(client, event, records)
    return measures, len(data)


def _bench_confluent(
    client_config: ClientConfig, event: dict[str, Any], records: int
) -> list[Measure]:
    from confluent_kafka.schema_registry import SchemaRegistryClient, record_subject_name_strategy
    from confluent_kafka.schema_registry.avro import AvroDeserializer as ConfluentDeserializer
    from confluent_kafka.schema_registry.avro import AvroSerializer as ConfluentSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    client = SchemaRegistryClient(client_config.confluent_registry())
    governed = governed_schema("person")
    serializer = ConfluentSerializer(
        client,
        governed.text,
        conf={
            "auto.register.schemas": False,
            "use.latest.version": False,
            "subject.name.strategy": record_subject_name_strategy,
        },
    )
    deserializer = ConfluentDeserializer(client)
    context = SerializationContext(agency_topic("police-ctu", "person"), MessageField.VALUE)
    data = serializer(event, context)
    assert data is not None
    return [
        Measure(
            "confluent-kafka AvroSerializer",
            "encode",
            records,
            _time(lambda: serializer(event, context), records),
        ),
        Measure(
            "confluent-kafka AvroDeserializer",
            "decode",
            records,
            _time(lambda: deserializer(data, context), records),
        ),
    ]


def report(measures: list[Measure], size: int, pinned: str) -> str:
    from importlib import metadata

    lines = [
        f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs, {pinned})",
        f"Python {platform.python_version()}, fastavro {fastavro.__version__}, "
        f"confluent-kafka {metadata.version('confluent-kafka')}",
        f"record: synthetic Person UPSERT event, {size} bytes in the wire format",
        "",
        f"{'library':<34} {'operation':<9} {'records':>8} {'records/s':>11}",
    ]
    for measure in measures:
        lines.append(
            f"{measure.library:<34} {measure.operation:<9} {measure.records:>8} "
            f"{measure.per_second:>11,.0f}"
        )
    return "\n".join(lines)
