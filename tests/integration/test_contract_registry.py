"""The contract against the real Apicurio Registry and Kafka of the local stack.

Tests that evolve schemas use their own subjects (a uuid prefix) and delete them afterwards,
so the real subjects are never changed.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from schemas.catalogue import governed_schema
from schemas.config import Settings
from schemas.entities import ENTITIES, RECONCILED_OUTPUTS, SCHEMA_NAMES
from schemas.errors import RegistryUnavailableError, SerializationError
from schemas.examples import example_delete, example_event, example_reconciled
from schemas.registration import LocalSchema, Status, check_all, register_all
from schemas.serde import (
    AvroDeserializer,
    AvroSerializer,
    SchemaNotRegisteredError,
    SchemaRegistry,
    WireFormatError,
)
from schemas.topics import create_topics, topic_plan


@pytest.fixture(scope="module")
def registry(stack: Settings) -> Iterator[SchemaRegistry]:
    with SchemaRegistry(stack.client.registry()) as client:
        results = register_all(client)  # idempotent: the governed subjects exist afterwards
        assert all(result.ok for result in results), [r.describe() for r in results]
        yield client


@pytest.fixture
def scratch_prefix(registry: SchemaRegistry) -> Iterator[str]:
    prefix = f"test-{uuid.uuid4().hex[:10]}."
    yield prefix
    for subject in registry.subjects():
        if subject.startswith(prefix):
            registry.delete_subject(subject)


@pytest.mark.parametrize("entity", ENTITIES)
def test_every_agency_event_round_trips_through_the_registry(
    registry: SchemaRegistry, entity: str
) -> None:
    serialize = AvroSerializer(registry, entity)
    deserialize = AvroDeserializer(registry)
    for event in (example_event(entity), example_delete(entity)):
        data = serialize(event)
        assert data[0] == 0 and int.from_bytes(data[1:5], "big") == serialize.schema_id
        decoded = deserialize(data, expected=entity)
        assert decoded.subject == f"tipsync.agency.{entity.capitalize()}"
        assert decoded.schema_id == serialize.schema_id
        assert decoded.record == event


@pytest.mark.parametrize("output", RECONCILED_OUTPUTS)
def test_every_reconciled_record_round_trips_through_the_registry(
    registry: SchemaRegistry, output: str
) -> None:
    name = f"reconciled.{output}"
    decoded = AvroDeserializer(registry)(
        AvroSerializer(registry, name)(example_reconciled(output)), expected=name
    )
    assert decoded.record == example_reconciled(output)


def _person_with(change: str) -> dict:
    schema = copy.deepcopy(governed_schema("person").schema)
    if change == "optional field added":
        schema["fields"].append(
            {"name": "source_system", "type": ["null", "string"], "default": None}
        )
    elif change == "required field removed":
        schema["fields"] = [f for f in schema["fields"] if f["name"] != "source_version"]
    elif change == "type changed":
        next(f for f in schema["fields"] if f["name"] == "source_version")["type"] = "string"
    return schema


def _local(prefix: str, schema: dict) -> list[LocalSchema]:
    subject = prefix + governed_schema("person").subject
    return [LocalSchema("person", subject, json.dumps(schema))]


def test_adding_an_optional_field_with_a_default_is_accepted(
    registry: SchemaRegistry, scratch_prefix: str
) -> None:
    [first] = register_all(registry, _local(scratch_prefix, _person_with("nothing")))
    assert first.status == Status.REGISTERED
    evolved = _local(scratch_prefix, _person_with("optional field added"))
    assert [result.status for result in check_all(registry, evolved)] == [Status.COMPATIBLE]
    [second] = register_all(registry, evolved)
    assert second.status == Status.REGISTERED and second.schema_id != first.schema_id
    # Old data still reads with the evolved schema, the new field taking its default.
    old_writer = AvroSerializer(
        registry, "person", subject=evolved[0].subject, schema=_person_with("nothing")
    )
    decoded = AvroDeserializer(registry)(old_writer(example_event("person")))
    assert decoded.record == example_event("person")


@pytest.mark.parametrize("change", ["required field removed", "type changed"])
def test_breaking_changes_are_refused_and_reported_with_the_registry_reason(
    registry: SchemaRegistry, scratch_prefix: str, change: str
) -> None:
    register_all(registry, _local(scratch_prefix, _person_with("nothing")))
    broken = _local(scratch_prefix, _person_with(change))
    [checked] = check_all(registry, broken)
    assert checked.status == Status.INCOMPATIBLE
    assert any("source_version" in reason or "/fields/" in reason for reason in checked.reasons)
    [refused] = register_all(registry, broken)
    assert refused.status == Status.INCOMPATIBLE and refused.reasons


def test_schemas_check_command_exits_1_with_the_reason(
    registry: SchemaRegistry, scratch_prefix: str
) -> None:
    # The scratch subject holds a version with one more required field than the local
    # schema, so the local schema "removes a required field".
    richer = _person_with("nothing")
    richer["fields"].append({"name": "extra_required", "type": "string"})
    subject = scratch_prefix + governed_schema("person").subject
    register_all(registry, [LocalSchema("person", subject, json.dumps(richer))])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "deploy.cli",
            "schemas",
            "check",
            "--subject-prefix",
            scratch_prefix,
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith(subject))
    assert "incompatible" in line
    assert "extra_required" in result.stdout
    assert "new subject" in result.stdout  # the other scratch subjects do not exist


def test_serializer_never_registers_and_says_what_to_run(
    registry: SchemaRegistry, scratch_prefix: str
) -> None:
    subject = scratch_prefix + "tipsync.agency.Person"
    with pytest.raises(SchemaNotRegisteredError, match="run `tipsync schemas register`"):
        AvroSerializer(registry, "person", subject=subject, schema=_person_with("nothing"))
    assert subject not in registry.subjects()


def test_record_that_does_not_fit_names_the_field(registry: SchemaRegistry) -> None:
    event = example_event("person")
    event["source_version"] = "three"
    with pytest.raises(SerializationError, match="source_version"):
        AvroSerializer(registry, "person")(event)


def test_unknown_schema_id_and_wrong_topic_are_clear_errors(registry: SchemaRegistry) -> None:
    deserialize = AvroDeserializer(registry)
    with pytest.raises(WireFormatError, match="schema id 2147483000 is not in the registry"):
        deserialize(b"\x00" + (2147483000).to_bytes(4, "big") + b"\x02")
    data = AvroSerializer(registry, "case")(example_event("case"))
    with pytest.raises(WireFormatError, match="is a tipsync.agency.Case record, but this topic"):
        deserialize(data, expected="person")
    with pytest.raises(WireFormatError, match="does not decode"):
        deserialize(data[:20])


def test_registry_that_is_down_is_retried_then_reported() -> None:
    down = SchemaRegistry("http://127.0.0.1:9/apis/ccompat/v7", attempts=3, backoff_seconds=0.01)
    with pytest.raises(RegistryUnavailableError, match="did not answer .* after 3 attempts"):
        AvroSerializer(down, "person")


def test_topics_create_is_idempotent(stack: Settings) -> None:
    agency = f"test-{uuid.uuid4().hex[:8]}"
    plan = [spec for spec in topic_plan([agency]) if spec.name.startswith("tip.agency.")]
    try:
        assert set(create_topics(stack.client, plan).values()) == {"created"}
        assert set(create_topics(stack.client, plan).values()) == {"exists"}
    finally:
        admin = AdminClient(stack.client.librdkafka())
        for future in admin.delete_topics([spec.name for spec in plan]).values():
            future.result()


def test_every_schema_name_is_registered(registry: SchemaRegistry) -> None:
    results = check_all(registry)
    assert [result.name for result in results] == list(SCHEMA_NAMES)
    assert {result.status for result in results} == {Status.UNCHANGED}
