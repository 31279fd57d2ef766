"""Avro serde in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro body.

fastavro with the schema parsed once per serializer (``tipsync bench serde`` measures it
against confluent-kafka's AvroSerializer; see docs/BENCHMARKS.md).

Usage::

    registry = SchemaRegistry(settings.client.registry())
    serialize = AvroSerializer(registry, "person")             # agency Person events
    serialize_golden = AvroSerializer(registry, "reconciled.person")  # GoldenPerson
    data = serialize(event_dict)
    decoded = AvroDeserializer(registry)(data, expected="person")
    decoded.schema_id, decoded.subject, decoded.record

Schema names are those of ``schemas.entities.SCHEMA_NAMES``: ``"<entity>"`` for agency events,
``"reconciled.<entity>"`` and ``"reconciled.match_decision"`` for the reconciled topics.

Records are plain dicts shaped like the Avro schema (``schemas.models`` describes them):
timestamps are timezone-aware datetimes (epoch milliseconds are accepted when writing),
dates are ``datetime.date``, enums are symbol strings. A pydantic model of the contract may
be passed instead of a dict.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from io import BytesIO
from typing import Any, NamedTuple

import fastavro
from fastavro.logical_writers import LOGICAL_WRITERS
from fastavro.validation import ValidationError as FastavroValidationError
from fastavro.validation import validate as fastavro_validate
from pydantic import BaseModel

from schemas.catalogue import governed_schema, model_for, schema_for_subject
from schemas.errors import (
    SchemaNotRegisteredError,
    SerializationError,
    UnknownSchemaError,
    WireFormatError,
    WrongSchemaError,
)
from schemas.registry import SchemaRegistry

MAGIC_BYTE = 0
HEADER = struct.Struct(">bI")


class DecodedRecord(NamedTuple):
    schema_id: int
    subject: str
    record: dict[str, Any]


class AvroSerializer:
    """Writes records of one governed schema. Never registers a schema.

    At construction it asks the registry for the id under which the local schema of ``name``
    is registered (in its subject, the Avro full name); when it is not there it raises
    SchemaNotRegisteredError telling the operator to run ``tipsync schemas register``.
    ``subject`` and ``schema`` override the governed ones (tests with their own subjects).
    """

    def __init__(
        self,
        registry: SchemaRegistry,
        name: str,
        *,
        subject: str | None = None,
        schema: dict[str, Any] | None = None,
    ) -> None:
        if schema is None:
            governed = governed_schema(name)
            schema, parsed, text = governed.schema, governed.parsed, governed.text
        else:
            model_for(name)  # a typo in the name fails here, not at the first record
            parsed, text = fastavro.parse_schema(schema), json.dumps(schema)
        self.name = name
        self.subject = subject or str(schema["namespace"] + "." + schema["name"])
        schema_id = registry.lookup(self.subject, text)
        if schema_id is None:
            raise SchemaNotRegisteredError(
                f"the local schema of '{name}' is not registered under subject {self.subject} "
                f"in the registry at {registry.url}; producers never register schemas: run "
                "`tipsync schemas register` (or `tipsync schemas check` to see why it differs)"
            )
        self.schema_id = schema_id
        self._parsed = parsed
        self._header = HEADER.pack(MAGIC_BYTE, schema_id)
        self._nullable_records = _nullable_record_fields(schema)
        self._field_names = _schema_field_names(schema)

    def __call__(self, record: dict[str, Any] | BaseModel) -> bytes:
        if isinstance(record, BaseModel):
            record = record.model_dump()
        if self._nullable_records:
            # fastavro picks a union branch by validating the datum against each branch; naming
            # the branch (its tuple notation) skips that deep check of the payload: 1.5x faster.
            record = dict(record)
            for field_name, record_name in self._nullable_records:
                value = record.get(field_name)
                if isinstance(value, dict):
                    record[field_name] = (record_name, value)
        buffer = BytesIO()
        buffer.write(self._header)
        try:
            fastavro.schemaless_writer(buffer, self._parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as error:
            raise SerializationError(self._explain(record, error)) from None
        return buffer.getvalue()

    def _explain(self, record: Any, error: Exception) -> str:
        """Why ``record`` does not fit: field paths and expected types, never a value.

        The message goes into the dead-letter ``tipsync.detail`` header and the log, where
        personal data must not go; fastavro's own texts quote the offending value (``phones is
        <+1876...>``, ``'Zyxwv' is not in list``), so none of them is passed on.
        """
        try:
            fastavro_validate(record, self._parsed, raise_errors=True)
        except FastavroValidationError as validation:
            detail = "fields that do not match: " + _field_problems(validation.errors)
        except Exception as validator_error:  # noqa: BLE001 - its failure must not hide the cause
            # A logical type's conversion (a date, a timestamp) failed inside the validator.
            fields = _unconvertible_fields(record, self._parsed, {}, "")
            detail = (
                f"values that do not convert to their Avro type "
                f"({_error_kind(validator_error, self._field_names)}): "
                + (", ".join(sorted(set(fields))) or "field not found")
            )
        else:
            detail = f"the Avro writer failed ({_error_kind(error, self._field_names)})"
        return (
            f"a '{self.name}' record does not fit schema {self.subject} (id {self.schema_id}): "
            f"{detail}; validate it with schemas.models.validate_event first"
        )


def _field_problems(errors: Sequence[Any]) -> str:
    """``<field path>: <type> given, expected <type> or <type>`` per field, from fastavro's
    ValidationErrorData (its ``datum`` is the value and is read for its type name only)."""
    given: dict[str, str] = {}
    expected: dict[str, list[str]] = {}
    for item in errors:
        field = str(getattr(item, "field", "") or "the record")
        datum = getattr(item, "datum", None)
        given.setdefault(field, "nothing" if datum is None else type(datum).__name__)
        wanted = expected.setdefault(field, [])
        name = _type_name(getattr(item, "schema", None))
        if name not in wanted:
            wanted.append(name)
    return ", ".join(
        f"{field}: {given[field]} given, expected {' or '.join(expected[field])}"
        for field in sorted(given)
    )


def _type_name(schema: Any) -> str:
    """A short name of an Avro type (``string``, ``enum tipsync.common.Sex``, ``array of
    string``): the schema's enum symbols and docs would only lengthen the detail."""
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return " or ".join(_type_name(branch) for branch in schema)
    if isinstance(schema, dict):
        kind = schema.get("logicalType") or schema.get("type")
        if kind == "array":
            return "array of " + _type_name(schema.get("items"))
        if kind == "map":
            return "map of " + _type_name(schema.get("values"))
        if kind in ("record", "enum", "fixed") and schema.get("name"):
            return f"{kind} {schema['name']}"
        return _type_name(kind)
    return "an Avro type"


def _error_kind(error: BaseException, field_names: frozenset[str]) -> str:
    """An exception named by its type alone: fastavro's and Python's texts quote values
    (``'Zyxwv' is not in list``, ``invalid literal for int() with base 10: ...``). A KeyError
    keeps its key when that key is a field of the schema (a missing field), which is no data."""
    if isinstance(error, KeyError) and error.args and error.args[0] in field_names:
        return f"KeyError: field {error.args[0]!r} missing"
    return type(error).__name__


def _unconvertible_fields(
    datum: Any, schema: Any, named: dict[str, Any], path: str
) -> list[str]:
    """Paths of the fields whose value fastavro's logical-type writer (date, timestamp-millis)
    refuses: the validator stops at the first with a bare exception and no field name."""
    if isinstance(schema, str):
        schema = named.get(schema, schema)
    if datum is None or isinstance(schema, str):
        return []
    if isinstance(schema, list):
        if isinstance(datum, tuple) and len(datum) == 2 and isinstance(datum[0], str):
            datum = datum[1]  # the union branch named in tuple notation (see __call__)
        return [found for branch in schema
                for found in _unconvertible_fields(datum, branch, named, path)]
    if not isinstance(schema, dict):
        return []
    kind = schema.get("type")
    if isinstance(kind, dict | list):
        return _unconvertible_fields(datum, kind, named, path)
    if schema.get("name") and kind in ("record", "enum", "fixed"):
        named.setdefault(schema["name"], schema)
    logical = schema.get("logicalType")
    if logical:
        prepare = LOGICAL_WRITERS.get(f"{kind}-{logical}")
        try:
            if prepare:
                prepare(datum, schema)
        except Exception:  # noqa: BLE001 - any failure here is the one being looked for
            return [path or "the record"]
        return []
    if kind == "record" and isinstance(datum, Mapping):
        return [found for field in schema.get("fields", ())
                for found in _unconvertible_fields(
                    datum.get(field["name"]), field["type"], named,
                    f"{schema['name']}.{field['name']}")]
    if kind == "array" and isinstance(datum, list | tuple):
        return [found for item in datum
                for found in _unconvertible_fields(item, schema.get("items"), named, path)]
    if kind == "map" and isinstance(datum, Mapping):
        return [found for value in datum.values()
                for found in _unconvertible_fields(value, schema.get("values"), named, path)]
    return []


def _schema_field_names(schema: Any) -> frozenset[str]:
    """Every record field name in ``schema``, nested records included."""
    names: set[str] = set()
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            for field in node.get("fields", ()):
                names.add(field["name"])
                pending.append(field.get("type"))
            pending.extend(node[key] for key in ("items", "values") if key in node)
            if isinstance(node.get("type"), dict | list):
                pending.append(node["type"])
    return frozenset(names)


def _nullable_record_fields(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """Top-level fields typed ``["null", <record>]`` with the record's full name."""
    found = []
    for field in schema.get("fields", []):
        branches = field["type"]
        if isinstance(branches, list) and len(branches) == 2 and branches[0] == "null":
            branch = branches[1]
            if isinstance(branch, dict) and branch.get("type") == "record":
                namespace = branch.get("namespace") or schema.get("namespace", "")
                found.append((field["name"], f"{namespace}.{branch['name']}".strip(".")))
    return found


class _Reader(NamedTuple):
    subject: str
    writer: Any
    reader: Any | None


class AvroDeserializer:
    """Reads Confluent wire-format messages of any schema in the registry.

    The writer schema is fetched by id (once per id). When the subject is governed here, the
    record is resolved to the local schema, so a consumer always sees the shape it was built
    against (fields added later by writers are dropped, fields it has but the writer lacked
    get their defaults). Raises WireFormatError naming the problem: too short, wrong magic
    byte, unknown schema id, bytes that do not decode, or an unexpected schema.
    """

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry
        self._readers: dict[int, _Reader] = {}

    def __call__(self, data: bytes, expected: str | None = None) -> DecodedRecord:
        """Decode ``data``; with ``expected`` (a schema name such as ``"person"``), a message
        written with another record type is refused."""
        if data is None or len(data) < HEADER.size:
            size = "no" if data is None else f"{len(data)}"
            raise WireFormatError(
                f"message has {size} bytes: a Confluent wire-format message has at least 5 "
                "(magic byte 0 and a 4-byte schema id); was it written by an Avro serializer?"
            )
        magic, schema_id = HEADER.unpack_from(data)
        if magic != MAGIC_BYTE:
            raise WireFormatError(
                f"message starts with byte {magic}, not the magic byte 0 of the Confluent wire "
                "format; it was not written by an Avro serializer of this registry"
            )
        reader = self._readers.get(schema_id) or self._load(schema_id)
        if expected is not None:
            wanted = model_for(expected).avro_name
            if reader.subject != wanted:
                raise WrongSchemaError(
                    f"message with schema id {schema_id} is a {reader.subject} record, but this "
                    f"topic carries {wanted} records; the producer wrote to the wrong topic"
                )
        buffer = BytesIO(data)
        buffer.seek(HEADER.size)
        try:
            record = fastavro.schemaless_reader(buffer, reader.writer, reader.reader)
        except Exception as error:  # noqa: BLE001 - fastavro raises many types on bad bytes
            # The exception's text is left out: it can quote the bytes being decoded (a
            # UnicodeDecodeError names the byte, a SchemaResolutionError the datum), and this
            # message goes into dead-letter headers and logs.
            raise WireFormatError(
                f"message of {len(data)} bytes with schema id {schema_id} ({reader.subject}) "
                f"does not decode ({type(error).__name__}); it is truncated or was "
                "written with another schema"
            ) from None
        if buffer.tell() != len(data):
            raise WireFormatError(
                f"message with schema id {schema_id} ({reader.subject}) has "
                f"{len(data) - buffer.tell()} bytes left after the record; it was written with "
                "another schema than the id says"
            )
        assert isinstance(record, dict)
        return DecodedRecord(schema_id, reader.subject, record)

    def _load(self, schema_id: int) -> _Reader:
        text = self.registry.schema_text_by_id(schema_id)
        if text is None:
            raise UnknownSchemaError(
                f"schema id {schema_id} is not in the registry at {self.registry.url}; the "
                "message was written against another registry, or its schema was deleted"
            )
        writer_schema = json.loads(text)
        subject = f"{writer_schema.get('namespace', '')}.{writer_schema.get('name', '')}".strip(".")
        governed = schema_for_subject(subject)
        reader_parsed = None
        if governed is not None and governed.schema != writer_schema:
            reader_parsed = governed.parsed
        reader = _Reader(subject, fastavro.parse_schema(writer_schema), reader_parsed)
        self._readers[schema_id] = reader
        return reader


__all__ = [
    "AvroDeserializer",
    "AvroSerializer",
    "DecodedRecord",
    "SchemaNotRegisteredError",
    "SchemaRegistry",
    "SerializationError",
    "WireFormatError",
]
