"""The pydantic models and the Avro schemas agree, field by field, and the committed .avsc
files are exactly what the models generate."""

from __future__ import annotations

import io
import json
import types
from typing import Any, Union, get_args, get_origin

import fastavro
import pytest

from schemas.avro import avro_schema, schema_file_text
from schemas.catalogue import all_schemas, avsc_path, governed_schema, model_for
from schemas.entities import ENTITIES, RECONCILED_OUTPUTS, SCHEMA_NAMES
from schemas.enums import ALL_ENUMS, ContractEnum
from schemas.examples import example_delete, example_event, example_reconciled
from schemas.models import ContractModel


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_committed_avsc_is_what_the_models_generate(name: str) -> None:
    model = model_for(name)
    committed = avsc_path(model.avro_name).read_text(encoding="utf-8")
    assert committed == schema_file_text(avro_schema(model)), (
        f"{avsc_path(model.avro_name).name} differs from the models: run `tipsync schemas export`"
    )


def _named_types(schema: Any, found: dict[str, dict]) -> dict[str, dict]:
    if isinstance(schema, list):
        for branch in schema:
            _named_types(branch, found)
    elif isinstance(schema, dict):
        if schema.get("type") in ("record", "enum"):
            found[f"{schema['namespace']}.{schema['name']}"] = schema
            for field in schema.get("fields", []):
                _named_types(field["type"], found)
        elif schema.get("type") == "array":
            _named_types(schema["items"], found)
        elif schema.get("type") == "map":
            _named_types(schema["values"], found)
    return found


def _strip(annotation: Any) -> Any:
    while hasattr(annotation, "__metadata__"):
        annotation = get_args(annotation)[0]
    return annotation


def _assert_field_matches(model: type[ContractModel], name: str, avro: Any, types_: dict) -> None:
    info = model.model_fields[name]
    annotation = _strip(info.annotation)
    where = f"{model.__name__}.{name}"
    if get_origin(annotation) in (Union, types.UnionType):
        assert isinstance(avro, list) and avro[0] == "null", f"{where} is nullable in pydantic only"
        assert info.default is None, f"{where}: a nullable field defaults to null"
        annotation = _strip(next(arg for arg in get_args(annotation) if arg is not type(None)))
        avro = avro[1]
    else:
        assert not (isinstance(avro, list)), f"{where} is nullable in Avro only"
    resolved = types_.get(avro, avro) if isinstance(avro, str) else avro
    if get_origin(annotation) is list:
        assert resolved["type"] == "array", where
        return
    if get_origin(annotation) is dict:
        assert resolved["type"] == "map", where
        return
    if isinstance(annotation, type) and issubclass(annotation, ContractEnum):
        assert resolved["type"] == "enum", where
        assert resolved["symbols"] == annotation.symbols(), f"{where}: enum symbols differ"
        return
    if isinstance(annotation, type) and issubclass(annotation, ContractModel):
        assert resolved["type"] == "record", where
        assert f"{resolved['namespace']}.{resolved['name']}" == annotation.avro_name, where
        return
    primitive = {bool: "boolean", int: "long", float: "double", str: "string"}
    if annotation in primitive:
        assert resolved == primitive[annotation], f"{where}: {resolved} vs {annotation}"
        return
    assert resolved["logicalType"] in ("timestamp-millis", "date"), where


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_models_and_avro_schemas_agree_field_by_field(name: str) -> None:
    governed = governed_schema(name)
    named = _named_types(governed.schema, {})
    models: list[type[ContractModel]] = [governed.model]
    checked: set[str] = set()
    while models:
        model = models.pop()
        if model.avro_name in checked:
            continue
        checked.add(model.avro_name)
        record = named[model.avro_name]
        avro_fields = {field["name"]: field for field in record["fields"]}
        assert set(avro_fields) == set(model.model_fields), f"{model.__name__}: field names differ"
        for field_name, info in model.model_fields.items():
            avro_field = avro_fields[field_name]
            assert ("default" in avro_field) == (not info.is_required()), (
                f"{model.__name__}.{field_name}: required in one and optional in the other"
            )
            _assert_field_matches(model, field_name, avro_field["type"], named)
            for argument in _leaf_models(info.annotation):
                models.append(argument)
    assert checked >= {governed.model.avro_name}


def _leaf_models(annotation: Any) -> list[type[ContractModel]]:
    found = []
    stack = [annotation]
    while stack:
        current = stack.pop()
        if isinstance(current, type) and issubclass(current, ContractModel):
            found.append(current)
        stack.extend(get_args(current))
    return found


def test_every_enum_has_a_default_symbol_among_its_symbols() -> None:
    for enum in ALL_ENUMS:
        assert enum.avro_default().value in enum.symbols(), enum.__name__
    for governed in all_schemas():
        for named in _named_types(governed.schema, {}).values():
            if named["type"] == "enum":
                assert named["default"] in named["symbols"], named["name"]


def _round_trip(schema: Any, record: dict) -> dict:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record)
    buffer.seek(0)
    return fastavro.schemaless_reader(buffer, schema, None)


@pytest.mark.parametrize("entity", ENTITIES)
def test_agency_examples_round_trip_through_avro(entity: str) -> None:
    parsed = governed_schema(entity).parsed
    assert _round_trip(parsed, example_event(entity)) == example_event(entity)
    assert _round_trip(parsed, example_delete(entity)) == example_delete(entity)


@pytest.mark.parametrize("output", RECONCILED_OUTPUTS)
def test_reconciled_examples_round_trip_through_avro(output: str) -> None:
    parsed = governed_schema(f"reconciled.{output}").parsed
    assert _round_trip(parsed, example_reconciled(output)) == example_reconciled(output)


def test_golden_records_list_their_key_first() -> None:
    for output in ENTITIES:
        schema = governed_schema(f"reconciled.{output}").schema
        assert schema["fields"][0]["name"] == f"{output}_id"


def test_an_older_reader_reads_a_symbol_added_later_as_the_default() -> None:
    old = governed_schema("case").schema
    new = json.loads(json.dumps(old))
    status = next(f for f in new["fields"] if f["name"] == "payload")["type"][1]["fields"][2]
    assert status["name"] == "status"
    status["type"]["symbols"].append("APPEALED")
    event = example_event("case")
    event["payload"]["status"] = "APPEALED"
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(new), event)
    buffer.seek(0)
    read = fastavro.schemaless_reader(
        buffer, fastavro.parse_schema(new), fastavro.parse_schema(old)
    )
    assert read["payload"]["status"] == "UNKNOWN"
