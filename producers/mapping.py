"""The mapping file: how one agency's own export shape maps onto the canonical columns.

So that no agency has to change its export, a YAML file names, per canonical column, the
agency's column, splits joined name fields, gives date formats and translates codes. It is
validated as a whole before a single row is read: a typo in it is a fatal error naming the
key, never a file of silently empty values.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from producers.canonical import (
    DATE_COLUMNS,
    TIMESTAMP_COLUMNS,
    Entity,
    InvalidValuePolicy,
    OnInvalid,
    always_rejects,
    columns_of,
)
from producers.normalise import clean_text


class MappingError(ValueError):
    """The mapping file is invalid; ``str()`` names the file, each bad key and the fix."""


class SplitStyle(StrEnum):
    GIVEN_FAMILY = "given_family"
    FAMILY_COMMA_GIVEN = "family_comma_given"


class Split(BaseModel):
    model_config = ConfigDict(extra="forbid")

    into: list[str] = Field(min_length=2, max_length=3)
    style: SplitStyle


class AgencyMapping(BaseModel):
    """A validated mapping file."""

    model_config = ConfigDict(extra="forbid")

    agency: str
    entity: Entity
    format: Literal["csv", "jsonl"] = "csv"
    delimiter: str = ","
    encoding: str = "utf-8"
    columns: dict[str, str] = Field(default_factory=dict)
    split: dict[str, Split] = Field(default_factory=dict)
    dates: dict[str, list[str]] = Field(default_factory=dict)
    codes: dict[str, dict[str, str]] = Field(default_factory=dict)
    constants: dict[str, str] = Field(default_factory=dict)
    # canonical column (or "default") -> keep | reject: what an invalid value does to its row
    on_invalid: dict[str, OnInvalid] = Field(default_factory=dict)

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError(f"{value!r} is not one character; write e.g. ',' or ';' or '\\t'")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(
                f"{value!r} is not an encoding Python knows (e.g. utf-8, cp1252)"
            ) from None
        return value

    @field_validator("codes", "constants", mode="before")
    @classmethod
    def _values_as_text(cls, value: Any) -> Any:
        # YAML reads Y, 1 and true as booleans or numbers; the export holds them as text.
        if isinstance(value, dict):
            return {
                str(key): (_as_text(inner) if not isinstance(inner, dict) else {
                    _as_text(code): _as_text(meaning) for code, meaning in inner.items()
                })
                for key, inner in value.items()
            }
        return value

    @model_validator(mode="after")
    def _canonical_targets(self) -> AgencyMapping:
        known = columns_of(self.entity)
        problems: list[str] = []

        def check(where: str, column: str) -> None:
            if column not in known:
                close = difflib.get_close_matches(column, known, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                problems.append(
                    f"{where}: {column!r} is not a canonical {self.entity.value} column{hint}; "
                    f"the columns are {', '.join(known)}"
                )

        for column in self.columns:
            check(f"columns.{column}", column)
        for agency_column, split in self.split.items():
            for column in split.into:
                check(f"split.{agency_column}.into", column)
        for column, formats in self.dates.items():
            check(f"dates.{column}", column)
            if column in known and column not in DATE_COLUMNS | TIMESTAMP_COLUMNS:
                problems.append(f"dates.{column}: {column} is not a date or time column")
            for date_format in formats:
                if "%" not in date_format:
                    problems.append(
                        f"dates.{column}: {date_format!r} has no % directive; write e.g. %d/%m/%Y"
                    )
        for column in self.codes:
            check(f"codes.{column}", column)
        for column in self.constants:
            check(f"constants.{column}", column)
        for column, policy in self.on_invalid.items():
            if column == "default":
                continue
            check(f"on_invalid.{column}", column)
            if column in known and policy is OnInvalid.KEEP and always_rejects(
                self.entity, column
            ):
                problems.append(
                    f"on_invalid.{column}: {column} cannot be kept without its value (a row "
                    "without it cannot be identified or is not a change); remove the line, "
                    "its invalid values always reject the row"
                )
        targets = [*self.columns, *self.constants]
        for split in self.split.values():
            targets.extend(split.into)
        twice = sorted({column for column in targets if targets.count(column) > 1})
        for column in twice:
            problems.append(
                f"{column} is filled from more than one place (columns, split or constants); "
                "keep one"
            )
        has_id = "source_record_id" in self.columns or any(
            "source_record_id" in split.into for split in self.split.values()
        )
        if not has_id:
            problems.append(
                "columns.source_record_id is missing; name the agency column that holds each "
                "record's id"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @functools.cached_property
    def invalid_value_policy(self) -> InvalidValuePolicy:
        """The ``on_invalid`` setting: per column keep (the default) or reject."""
        return InvalidValuePolicy(
            columns=tuple(
                (column, policy) for column, policy in self.on_invalid.items()
                if column != "default"
            ),
            default=self.on_invalid.get("default", OnInvalid.KEEP),
        )

    def translate(self, row: Mapping[str, str]) -> dict[str, str]:
        """The agency's row as canonical columns (codes translated, dates still as text)."""
        canonical: dict[str, str] = {}
        for column, agency_column in self.columns.items():
            canonical[column] = row.get(agency_column, "")
        for agency_column, split in self.split.items():
            canonical.update(split_name(row.get(agency_column, ""), split))
        for column, codes in self.codes.items():
            value = canonical.get(column, "")
            if not value:
                continue
            if value in codes:
                canonical[column] = codes[value]
            elif ";" in value:
                canonical[column] = ";".join(
                    codes.get(item.strip(), item.strip()) for item in value.split(";")
                )
        canonical.update(self.constants)
        return canonical

    def missing_columns(self, header: list[str]) -> list[str]:
        """Agency columns the mapping reads that the file's header lacks."""
        wanted = [*self.columns.values(), *self.split]
        return [column for column in wanted if column not in header]


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def split_name(value: str, split: Split) -> dict[str, str]:
    """One joined name cell into the canonical name columns listed in ``split.into``."""
    cleaned = clean_text(value)
    parts: dict[str, str] = {}
    if split.style is SplitStyle.FAMILY_COMMA_GIVEN:
        family, _, rest = cleaned.partition(",")
        tokens = rest.split()
        given = tokens[0] if tokens else ""
        middle = " ".join(tokens[1:])
        family = family.strip()
    else:
        tokens = cleaned.split()
        given = tokens[0] if len(tokens) > 1 else ""
        family = tokens[-1] if tokens else ""
        middle = " ".join(tokens[1:-1])
    roles = {"family": family, "given": given, "middle": middle}
    for column in split.into:
        role = column.split("_")[0]
        parts[column] = roles.get(role, "")
    if len(split.into) == 2 and middle:
        # No middle_name column to receive it: keep the middle names with the given names.
        given_column = next((c for c in split.into if c.startswith("given")), None)
        if given_column:
            parts[given_column] = f"{given} {middle}".strip()
    return parts


def load_mapping(path: Path) -> AgencyMapping:
    """Read and validate a mapping file; raises ``MappingError`` naming each bad key."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise MappingError(f"mapping file {path} cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise MappingError(f"mapping file {path} is not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise MappingError(
            f"mapping file {path} must be a YAML mapping with keys agency, entity, columns, …"
        )
    try:
        return AgencyMapping.model_validate(document)
    except ValidationError as error:
        raise MappingError(
            f"mapping file {path} is invalid:\n" + "\n".join(_describe(e) for e in error.errors())
        ) from None


def _describe(error: Any) -> str:
    location = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = (
            "is not a mapping key; the keys are agency, entity, format, delimiter, encoding, "
            "columns, split, dates, codes, constants, on_invalid"
        )
    if error["type"] == "missing":
        message = "is required"
    return f"  {location}: {message}" if location else f"  {message}"

