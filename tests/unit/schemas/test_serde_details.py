"""Serde error messages name fields and problems, never values.

They end up in the dead-letter ``tipsync.detail`` header and in logs, where personal data must
not go. Every value below is synthetic and recognisable, so a leak shows as a substring.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from io import BytesIO
from typing import Any

import fastavro
import pytest

from schemas.catalogue import governed_schema
from schemas.errors import SerializationError
from schemas.examples import example_event
from schemas.serde import HEADER, MAGIC_BYTE, AvroDeserializer, AvroSerializer, WireFormatError

PHONE = "+18765550123"
NAME = "Zyxwv"
SCHEMA_ID = 7


class OfflineRegistry:
    """Answers the two questions serde asks, from local schema texts (no network)."""

    url = "offline://registry"

    def __init__(self, texts: dict[int, str] | None = None) -> None:
        self.texts = texts or {}

    def lookup(self, subject: str, text: str) -> int:
        return SCHEMA_ID

    def schema_text_by_id(self, schema_id: int) -> str | None:
        return self.texts.get(schema_id)


def _serializer() -> AvroSerializer:
    return AvroSerializer(OfflineRegistry(), "person")  # type: ignore[arg-type]


def _person(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    event = copy.deepcopy(example_event("person"))
    change(event)
    return event


def _set(*path_and_value: Any) -> Callable[[dict[str, Any]], None]:
    *path, field, value = path_and_value

    def change(event: dict[str, Any]) -> None:
        target = event
        for step in path:
            target = target[step]
        target[field] = value

    return change


# (what is wrong, the change, a field name the message must give, the values it must not)
BAD_PERSONS = [
    ("a phone list given as one number", _set("payload", "phones", 18765550123),
     "phones", ["18765550123"]),
    ("a phone that is a number, beside a valid one",
     _set("payload", "phones", [PHONE, 18765550123]), "phones", [PHONE, "18765550123"]),
    ("a given name inside a list", _set("payload", "given_name", [NAME]), "given_name", [NAME]),
    ("a family name that is a number", _set("payload", "family_name", 4242424242),
     "family_name", ["4242424242"]),
    ("a sex that is no symbol", _set("payload", "sex", NAME), "sex", [NAME]),
    ("an identifier scheme that is no symbol",
     _set("payload", "identifiers", [{"scheme": NAME, "value": PHONE, "issuing_country": "JM"}]),
     "scheme", [NAME, PHONE]),
    ("an address line that is a number", _set("payload", "addresses", [{"line": 18765550123}]),
     "line", ["18765550123"]),
    ("a version that is text", _set("source_version", NAME), "source_version", [NAME]),
    ("an event time that is text", _set("event_time", NAME), "event_time", [NAME]),
    ("a date that does not convert", _set("retention_until", f"{NAME}-{PHONE}"),
     "retention_until", [NAME, PHONE]),
]


@pytest.mark.parametrize(
    ("change", "field", "values"),
    [case[1:] for case in BAD_PERSONS],
    ids=[case[0] for case in BAD_PERSONS],
)
def test_serialization_error_names_the_field_and_quotes_no_value(
    change: Callable[[dict[str, Any]], None], field: str, values: list[str]
) -> None:
    with pytest.raises(SerializationError) as raised:
        _serializer()(_person(change))
    message = str(raised.value)
    assert field in message
    for value in values:
        assert value not in message
    assert "tipsync.agency.Person" in message  # the schema is still named


def test_serialization_error_names_the_expected_type() -> None:
    with pytest.raises(SerializationError) as raised:
        _serializer()(_person(_set("payload", "phones", [PHONE, 18765550123])))
    assert "PersonPayload.phones: int given, expected string" in str(raised.value)


def _wire(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buffer = BytesIO()
    buffer.write(HEADER.pack(MAGIC_BYTE, SCHEMA_ID))
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), record)
    return buffer.getvalue()


def test_decode_error_does_not_pass_on_a_decoded_value() -> None:
    # Bytes whose date field holds a day count past year 9999: fastavro's text would be
    # "year 29349 is out of range", a value read from the message.
    schema = governed_schema("person").schema
    as_plain_int = copy.deepcopy(schema)
    field = next(f for f in as_plain_int["fields"] if f["name"] == "retention_until")
    field["type"] = ["null", "int"]
    data = _wire(as_plain_int, _person(_set("retention_until", 10_000_000)))
    deserialize = AvroDeserializer(
        OfflineRegistry({SCHEMA_ID: json.dumps(schema)})  # type: ignore[arg-type]
    )

    with pytest.raises(WireFormatError) as raised:
        deserialize(data, expected="person")

    message = str(raised.value)
    assert "does not decode (ValueError)" in message
    assert "29349" not in message and "year" not in message


def test_decode_error_of_bad_text_does_not_quote_the_bytes() -> None:
    schema = governed_schema("person").schema
    good = _wire(schema, example_event("person"))
    # The first field is the event id, a string: make its first character invalid UTF-8.
    data = good[: HEADER.size + 1] + b"\xff" + good[HEADER.size + 2:]
    deserialize = AvroDeserializer(
        OfflineRegistry({SCHEMA_ID: json.dumps(schema)})  # type: ignore[arg-type]
    )

    with pytest.raises(WireFormatError) as raised:
        deserialize(data)

    message = str(raised.value)
    assert "does not decode (UnicodeDecodeError)" in message
    assert "0xff" not in message


def test_a_date_inside_the_payload_that_does_not_convert_is_named() -> None:
    # The payload goes to fastavro in tuple notation; the field is still found inside it.
    case = copy.deepcopy(example_event("case"))
    case["payload"]["opened_on"] = f"{NAME} {PHONE}"
    with pytest.raises(SerializationError) as raised:
        AvroSerializer(OfflineRegistry(), "case")(case)  # type: ignore[arg-type]
    message = str(raised.value)
    assert "CasePayload.opened_on" in message
    assert NAME not in message and PHONE not in message
