"""Avro schemas generated from the pydantic models (the pure half of ``tipsync schemas export``).

The mapping is deliberately small, so a newcomer can predict a schema from a model:

====================================  ===================================================
model annotation                      Avro type
====================================  ===================================================
``str``                               ``string``
``int`` / ``float`` / ``bool``        ``long`` / ``double`` / ``boolean``
``datetime``                          ``long`` with logicalType ``timestamp-millis``
``date``                              ``int`` with logicalType ``date``
``X | None`` (default None)           ``["null", X]`` with default null
``list[X]`` / ``dict[str, X]``        ``array`` / ``map`` (default ``[]`` / ``{}``)
a ContractEnum                        ``enum`` with its ``avro_default`` as default symbol
a ContractModel                       ``record`` named by its ``avro_name``
====================================  ===================================================

A field's pydantic default becomes its Avro default, its description the Avro ``doc``. Named
types (records, enums) are defined at first use and referenced by full name afterwards, as
Avro requires.
"""

from __future__ import annotations

import inspect
import json
import types
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic.fields import FieldInfo

from schemas.entities import COMMON_NAMESPACE
from schemas.enums import ContractEnum
from schemas.models import ContractModel


def avro_schema(model: type[ContractModel]) -> dict[str, Any]:
    """The Avro schema (as a JSON-ready dict) of a top-level record model."""
    schema = _record(model, set())
    assert isinstance(schema, dict)
    return schema


def schema_text(schema: dict[str, Any]) -> str:
    """The compact JSON text sent to the registry (registration and lookup use the same text)."""
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


def schema_file_text(schema: dict[str, Any]) -> str:
    """The pretty-printed text of a committed ``.avsc`` file."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _own_doc(cls: type) -> str | None:
    doc = cls.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if isinstance(doc, str) else None


def _split_name(full_name: str) -> tuple[str, str]:
    namespace, _, name = full_name.rpartition(".")
    return namespace, name


def _record(model: type[ContractModel], defined: set[str]) -> dict[str, Any] | str:
    if model.avro_name in defined:
        return model.avro_name
    defined.add(model.avro_name)
    namespace, name = _split_name(model.avro_name)
    schema: dict[str, Any] = {"type": "record", "name": name, "namespace": namespace}
    doc = _own_doc(model)
    if doc:
        schema["doc"] = doc
    names = list(model.model_fields)
    if model.key_field:
        names.remove(model.key_field)
        names.insert(0, model.key_field)
    schema["fields"] = [_field(name, model.model_fields[name], defined) for name in names]
    return schema


def _field(name: str, info: FieldInfo, defined: set[str]) -> dict[str, Any]:
    field: dict[str, Any] = {"name": name, "type": _type(info.annotation, defined)}
    if info.description:
        field["doc"] = info.description
    if not info.is_required():
        field["default"] = _default(info.default)
    return field


def _default(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | dict | str | int | float | bool) or value is None:
        return value
    raise TypeError(f"default {value!r} has no Avro form; use None, a literal, [] or {{}}")


def _type(annotation: Any, defined: set[str]) -> Any:
    origin = get_origin(annotation)
    arguments = get_args(annotation)
    if origin is Annotated:
        return _type(arguments[0], defined)
    if origin in (Union, types.UnionType):
        others = [argument for argument in arguments if argument is not type(None)]
        if len(others) != 1 or len(arguments) != 2:
            raise TypeError(f"{annotation} is not 'X | None'; the contract has no other unions")
        return ["null", _type(others[0], defined)]
    if origin is list:
        return {"type": "array", "items": _type(arguments[0], defined)}
    if origin is dict:
        if arguments[0] is not str:
            raise TypeError(f"{annotation}: Avro maps have string keys")
        return {"type": "map", "values": _type(arguments[1], defined)}
    if inspect.isclass(annotation):
        if issubclass(annotation, ContractEnum):
            return _enum(annotation, defined)
        if issubclass(annotation, ContractModel):
            return _record(annotation, defined)
        if issubclass(annotation, bool):
            return "boolean"
        if issubclass(annotation, int):
            return "long"
        if issubclass(annotation, float):
            return "double"
        if issubclass(annotation, str):
            return "string"
        if issubclass(annotation, datetime):
            return {"type": "long", "logicalType": "timestamp-millis"}
        if issubclass(annotation, date):
            return {"type": "int", "logicalType": "date"}
    raise TypeError(f"{annotation} has no Avro mapping in schemas/avro.py")


def _enum(enum: type[ContractEnum], defined: set[str]) -> dict[str, Any] | str:
    full_name = f"{COMMON_NAMESPACE}.{enum.__name__}"
    if full_name in defined:
        return full_name
    defined.add(full_name)
    schema: dict[str, Any] = {"type": "enum", "name": enum.__name__, "namespace": COMMON_NAMESPACE}
    doc = _own_doc(enum)
    if doc:
        schema["doc"] = doc
    schema["symbols"] = enum.symbols()
    schema["default"] = enum.avro_default().value
    return schema
