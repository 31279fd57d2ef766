"""Reading an agency's export row by row, where one bad row never stops the others.

A reader yields ``RawRow``s: the row's number as the agency sees it (the spreadsheet row,
header = row 1, for CSV; the line for JSON Lines), its original text for the rejects file,
and either its values (column -> text) or the reason it could not be read.
"""

from __future__ import annotations

import csv
import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

# A record spanning more than this many characters is almost always an unclosed quote that
# swallowed the rows after it; the reader rejects it and re-reads those rows.
MAX_RECORD_CHARACTERS = 65_536
MAX_RECORD_LINES = 200

csv.field_size_limit(MAX_RECORD_CHARACTERS * 4)


class FileError(ValueError):
    """The whole file cannot be read (unreadable header, unsupported format)."""


@dataclass(frozen=True)
class RawRow:
    number: int
    original: str
    values: dict[str, str] | None
    error: str | None = None


def _decode(line: bytes, encoding: str) -> tuple[str, bool]:
    """The line as text, and whether it held bytes invalid in ``encoding``."""
    try:
        return line.decode(encoding), False
    except UnicodeDecodeError:
        return line.decode(encoding, errors="backslashreplace"), True


class _Lines:
    """Decoded lines of a binary file, with push-back and a record of what was consumed."""

    def __init__(self, stream: BinaryIO, encoding: str) -> None:
        self.stream = stream
        self.encoding = encoding
        self.pending: deque[tuple[str, bool]] = deque()
        self.consumed: list[tuple[str, bool]] = []
        self.bytes_read = 0
        self.first = True

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.pending:
            item = self.pending.popleft()
        else:
            raw = self.stream.readline()
            if not raw:
                raise StopIteration
            self.bytes_read += len(raw)
            if self.first and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a byte-order mark that spreadsheet programs write
            self.first = False
            item = _decode(raw, self.encoding)
        self.consumed.append(item)
        return item[0]

    def take_consumed(self) -> tuple[str, bool]:
        consumed = self.consumed
        self.consumed = []  # a new list: callers may keep the old one (see _csv_rows)
        if len(consumed) == 1:
            return consumed[0]
        text = "".join(line for line, _ in consumed)
        invalid = any(bad for _, bad in consumed)
        return text, invalid

    def push_back(self, lines: list[tuple[str, bool]]) -> None:
        self.pending.extendleft(reversed(lines))


def read_csv(
    stream: BinaryIO, source_name: str, delimiter: str = ",", encoding: str = "utf-8"
) -> tuple[list[str], Iterator[RawRow], _Lines]:
    """The header and an iterator over the data rows of a CSV export."""
    lines = _Lines(stream, encoding)
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header_cells = next(reader)
    except StopIteration:
        raise FileError(f"{source_name} is empty; expected a header row of column names") from None
    except csv.Error as error:
        raise FileError(f"{source_name}: the header row cannot be read ({error})") from None
    _, header_invalid = lines.take_consumed()
    if header_invalid:
        raise FileError(
            f"{source_name}: the header row is not valid {encoding}; save the file as UTF-8 or "
            "give its encoding in the mapping file (encoding: cp1252)"
        )
    header = [cell.strip() for cell in header_cells]
    duplicates = sorted({column for column in header if header.count(column) > 1})
    if duplicates:
        raise FileError(
            f"{source_name}: the header names {', '.join(duplicates)} more than once; "
            "every column needs its own name"
        )
    return header, _csv_rows(lines, header, delimiter), lines


def _csv_rows(lines: _Lines, header: list[str], delimiter: str) -> Iterator[RawRow]:
    number = 1
    reader = csv.reader(lines, delimiter=delimiter)
    while True:
        try:
            cells = next(reader)
            error = None
        except StopIteration:
            return
        except csv.Error as problem:
            cells, error = [], f"the row cannot be read as CSV ({problem})"
        consumed = lines.consumed
        original, invalid = lines.take_consumed()
        if not cells and error is None:
            continue  # a blank line is not a row
        number += 1
        if len(original) > MAX_RECORD_CHARACTERS or len(consumed) > MAX_RECORD_LINES:
            # Re-read everything after this row's first line with a fresh parser.
            lines.push_back(consumed[1:])
            reader = csv.reader(lines, delimiter=delimiter)
            yield RawRow(
                number,
                consumed[0][0],
                None,
                "this row has a quote (\") that is never closed, so it ran over "
                f"{len(consumed)} lines; close the quote or remove it",
            )
            continue
        if invalid:
            yield RawRow(
                number, original, None,
                "the row holds bytes that are not valid text in the file's encoding; save the "
                "file as UTF-8 or give its encoding in the mapping file (encoding: cp1252)",
            )
        elif error:
            yield RawRow(number, original, None, error)
        elif all(not cell.strip() for cell in cells):
            continue  # an empty spreadsheet row (",,,,") holds nothing to publish
        elif len(cells) != len(header):
            yield RawRow(
                number, original, None,
                f"the row has {len(cells)} columns but the header has {len(header)}; check "
                "for a missing or extra delimiter, or quote values that contain one",
            )
        else:
            yield RawRow(number, original, dict(zip(header, cells, strict=True)))


def read_jsonl(
    stream: BinaryIO,
    source_name: str,
    encoding: str = "utf-8",
    record_id_key: str = "source_record_id",
) -> tuple[Iterator[RawRow], _Lines]:
    """An iterator over the objects of a JSON Lines export, nested keys joined with dots.

    ``record_id_key`` is the (dotted) key that holds the record's id: it must be a JSON
    string or a whole number, so that ``1``, ``1.0`` and ``true`` are not three ids.
    """
    lines = _Lines(stream, encoding)
    return _jsonl_rows(lines, record_id_key), lines


class _FloatText(str):
    """A JSON number with a fraction or an exponent, as the file wrote it (``18.50``)."""

    __slots__ = ()


class _DuplicateKeys(ValueError):
    def __init__(self, keys: list[str]) -> None:
        super().__init__(keys)
        self.keys = keys


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        repeated: dict[str, None] = {}
        for key, _ in pairs:
            if key in seen:
                repeated[key] = None
            seen.add(key)
        raise _DuplicateKeys(list(repeated))
    return document


# One decoder for every line (json.loads with hooks would build a new one per call). Objects
# are built by the C parser; the hook only compares two lengths, unless a key is repeated.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_float=_FloatText)


def _jsonl_rows(lines: _Lines, record_id_key: str) -> Iterator[RawRow]:
    for number, line in enumerate(lines, start=1):
        original, invalid = lines.take_consumed()
        if not line.strip():
            continue
        if invalid:
            yield RawRow(
                number, original, None,
                "the line holds bytes that are not valid text in the file's encoding; save it "
                "as UTF-8",
            )
            continue
        if len(line) > MAX_RECORD_CHARACTERS:
            yield RawRow(
                number, original[:1000], None,
                f"the line is {len(line)} characters long, more than {MAX_RECORD_CHARACTERS}; "
                "split it or shorten the long field",
            )
            continue
        try:
            document = _DECODER.decode(line)
        except json.JSONDecodeError as error:
            yield RawRow(number, original, None, f"the line is not valid JSON ({error.msg})")
            continue
        except _DuplicateKeys as error:
            keys = error.keys
            yield RawRow(
                number, original, None,
                f"the object has the key{'s' if len(keys) > 1 else ''} {', '.join(keys)} more "
                "than once, and only one value can be read; keep one of each key",
            )
            continue
        if not isinstance(document, dict):
            yield RawRow(
                number, original, None, "the line is JSON but not an object ({...}); write one "
                "object per line",
            )
            continue
        values: dict[str, str] = {}
        problems: list[str] = []
        _flatten(document, "", values, problems, record_id_key)
        if problems:
            yield RawRow(number, original, None, "; ".join(problems))
        else:
            yield RawRow(number, original, values)


def _flatten(
    document: dict[str, Any],
    prefix: str,
    out: dict[str, str],
    problems: list[str],
    record_id_key: str,
) -> None:
    for key, value in document.items():
        path = f"{prefix}{key}"
        if path == record_id_key and not (
            value is None or type(value) is str or type(value) is int  # bool is an int
        ):
            problems.append(
                f"{path} (the record's id) is {_json_kind(value)}; an id must be a JSON "
                'string or a whole number, e.g. "P-17" or 17: write it as one'
            )
        elif isinstance(value, dict):
            _flatten(value, path + ".", out, problems, record_id_key)
        elif isinstance(value, list):
            if any(isinstance(item, dict | list) for item in value):
                problems.append(
                    f"{path} holds a list of objects; only lists of plain values are read"
                )
            else:
                out[path] = ";".join(_scalar_text(item) for item in value if item is not None)
        else:
            out[path] = _scalar_text(value)


def _scalar_text(value: Any) -> str:
    """A JSON value as text: strings as they are, numbers as written, true/false, null empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, _FloatText | float):
        return "a number with a fraction or an exponent"
    if isinstance(value, list):
        return "a list"
    return "an object"


def open_export(path: Path) -> BinaryIO:
    """The export opened for reading, with a message that names the path when it is not there."""
    try:
        return path.open("rb")
    except OSError as error:
        raise FileError(f"{path} cannot be opened ({error.strerror}); check the path") from None
