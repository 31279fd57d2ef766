from __future__ import annotations

import io

import pytest

from producers.readers import FileError, read_csv, read_jsonl


def rows_of(data: bytes, **options: str) -> tuple[list[str], list]:
    header, rows, _ = read_csv(io.BytesIO(data), "export.csv", **options)
    return header, list(rows)


def test_csv_rows_carry_spreadsheet_numbers_and_original_text() -> None:
    header, rows = rows_of(b"\xef\xbb\xbfsource_record_id,given_name\nP-1,Ann\n\nP-2,\"Bo, b\"\n")
    assert header == ["source_record_id", "given_name"]
    assert [(row.number, row.values) for row in rows] == [
        (2, {"source_record_id": "P-1", "given_name": "Ann"}),
        (3, {"source_record_id": "P-2", "given_name": "Bo, b"}),
    ]
    assert rows[1].original == 'P-2,"Bo, b"\n'


def test_a_row_with_the_wrong_column_count_is_rejected_and_the_next_is_read() -> None:
    _, rows = rows_of(b"a,b\n1,2,3\n4,5\n")
    assert "3 columns but the header has 2" in rows[0].error
    assert rows[1].values == {"a": "4", "b": "5"}


def test_invalid_bytes_reject_only_their_row() -> None:
    _, rows = rows_of(b"a,b\n1,\xff\xfe\n3,4\n")
    assert "not valid text" in rows[0].error
    assert "\\xff" in rows[0].original
    assert rows[1].values == {"a": "3", "b": "4"}


def test_cp1252_exports_are_read_with_their_encoding() -> None:
    _, rows = rows_of("a,b\n1,Jos\u00e9\n".encode("cp1252"), encoding="cp1252")
    assert rows[0].values == {"a": "1", "b": "Jos\u00e9"}


def test_an_unclosed_quote_rejects_one_row_and_rereads_the_rest() -> None:
    lines = [b"a,b", b'1,"never closed'] + [f"{n},x".encode() for n in range(2, 400)]
    _, rows = rows_of(b"\n".join(lines) + b"\n")
    assert "never closed" in rows[0].error
    good = [row for row in rows if row.values]
    assert len(good) == 398 and good[0].values == {"a": "2", "b": "x"}


def test_a_header_naming_a_column_twice_is_fatal() -> None:
    with pytest.raises(FileError, match="more than once"):
        rows_of(b"a,a\n1,2\n")


def test_jsonl_objects_are_flattened_with_dots_and_lists_joined() -> None:
    rows, _ = read_jsonl(
        io.BytesIO(b'{"id": 1, "name": {"first": "Ann"}, "phones": ["1", "2"], "ok": true}\n'
                   b"not json\n[1]\n"),
        "export.jsonl",
    )
    first, second, third = list(rows)
    assert first.values == {"id": "1", "name.first": "Ann", "phones": "1;2", "ok": "true"}
    assert "not valid JSON" in second.error and second.number == 2
    assert "not an object" in third.error


def jsonl_rows(data: bytes, **options: str) -> list:
    rows, _ = read_jsonl(io.BytesIO(data), "export.jsonl", **options)
    return list(rows)


def test_a_jsonl_object_with_a_key_twice_is_rejected_naming_the_key() -> None:
    first, nested, good = jsonl_rows(
        b'{"source_record_id": "P-1", "given_name": "Ann", "given_name": "Bo"}\n'
        b'{"source_record_id": "P-2", "name": {"first": "Ann", "first": "Bo"}}\n'
        b'{"source_record_id": "P-3", "given_name": "Ann"}\n'
    )
    assert first.values is None and first.error is not None
    assert "given_name" in first.error and "more than once" in first.error
    assert "Ann" not in first.error and "Bo" not in first.error  # no field values
    assert nested.values is None and nested.error is not None and "first" in nested.error
    assert good.values == {"source_record_id": "P-3", "given_name": "Ann"}


@pytest.mark.parametrize("literal", ["1.0", "1e3", "true", "false", "[1, 2]"])
def test_a_record_id_that_is_a_float_a_boolean_or_a_list_is_refused(literal: str) -> None:
    (row,) = jsonl_rows(f'{{"source_record_id": {literal}, "given_name": "Ann"}}\n'.encode())
    assert row.values is None and row.error is not None
    assert "source_record_id" in row.error and "string or a whole number" in row.error


def test_a_record_id_that_is_a_string_or_an_integer_is_its_text() -> None:
    rows = jsonl_rows(b'{"source_record_id": 1}\n{"source_record_id": "1"}\n'
                      b'{"source_record_id": 12345678901234567890}\n')
    assert [row.values["source_record_id"] for row in rows] == ["1", "1", "12345678901234567890"]


def test_the_record_id_key_of_a_mapping_is_held_to_the_same_rule() -> None:
    float_id, other_float = jsonl_rows(
        b'{"meta": {"ref": 7.0}}\n{"meta": {"ref": 7}, "source_record_id": 7.0}\n',
        record_id_key="meta.ref",
    )
    assert float_id.error is not None and "meta.ref" in float_id.error
    assert other_float.values == {"meta.ref": "7", "source_record_id": "7.0"}


def test_numbers_in_other_columns_keep_the_text_written_in_the_file() -> None:
    (row,) = jsonl_rows(
        b'{"source_record_id": "P-1", "latitude": 18.50, "longitude": -7.7e1, '
        b'"source_version": 3, "deleted": false, "phone": [8765551234, null]}\n'
    )
    assert row.values == {"source_record_id": "P-1", "latitude": "18.50", "longitude": "-7.7e1",
                          "source_version": "3", "deleted": "false", "phone": "8765551234"}
