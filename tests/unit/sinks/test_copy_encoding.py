"""The COPY text format the store writes: what PostgreSQL would read back."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sinks.store import copy_field, copy_text


def test_null_and_scalars() -> None:
    assert copy_field(None) == b"\\N"
    assert copy_field(True) == b"t"
    assert copy_field(12) == b"12"
    assert copy_field(date(1990, 1, 2)) == b"1990-01-02"
    assert copy_field(datetime(2024, 1, 2, 3, 4, tzinfo=UTC)) == b"2024-01-02T03:04:00+00:00"


def test_tabs_newlines_and_backslashes_are_escaped() -> None:
    assert copy_field("a\tb\nc\\d\re") == b"a\\tb\\nc\\\\d\\re"


def test_json_bytes_keep_their_escapes_by_doubling_the_backslash() -> None:
    assert copy_field(b'{"name": "say \\"hi\\""}') == b'{"name": "say \\\\"hi\\\\""}'


def test_non_ascii_text_is_utf8() -> None:
    assert copy_field("Zoë") == "Zoë".encode()


def test_arrays_quote_every_item_and_escape_quotes_and_backslashes_twice() -> None:
    assert copy_field([]) == b"{}"
    assert copy_field(["Ann", 'the "boss"', "back\\slash", None]) == (
        b'{"Ann","the \\\\"boss\\\\"","back\\\\\\\\slash",NULL}'
    )


def test_one_line_per_row_with_tab_separated_fields() -> None:
    assert copy_text([("a", None), ("b", 1)]) == b"a\t\\N\nb\t1\n"
