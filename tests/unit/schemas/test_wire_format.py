"""Wire-format checks that happen before the registry is asked anything."""

from __future__ import annotations

import pytest

from schemas.serde import AvroDeserializer, SchemaRegistry, WireFormatError

# Nothing listens there; these tests must fail on the bytes before any request is made.
UNREACHABLE = "http://127.0.0.1:9/apis/ccompat/v7"


@pytest.fixture
def deserializer() -> AvroDeserializer:
    return AvroDeserializer(SchemaRegistry(UNREACHABLE, attempts=1))


def test_too_short_message_is_refused(deserializer: AvroDeserializer) -> None:
    with pytest.raises(WireFormatError, match="message has 3 bytes"):
        deserializer(b"\x00\x00\x01")


def test_wrong_magic_byte_is_refused(deserializer: AvroDeserializer) -> None:
    with pytest.raises(WireFormatError, match="starts with byte 123, not the magic byte 0"):
        deserializer(b'{"json": true}')
