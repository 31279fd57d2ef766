"""docs/DATA_MODEL.md documents every record and field of the contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.catalogue import model_for
from schemas.entities import SCHEMA_NAMES
from schemas.enums import ALL_ENUMS
from schemas.models import ContractModel

DOC = (Path(__file__).resolve().parents[3] / "docs" / "DATA_MODEL.md").read_text(encoding="utf-8")


def _records(model: type[ContractModel]) -> set[type[ContractModel]]:
    found = {model}
    for info in model.model_fields.values():
        stack = [info.annotation]
        while stack:
            current = stack.pop()
            if isinstance(current, type) and issubclass(current, ContractModel):
                found |= _records(current)
            stack.extend(getattr(current, "__args__", ()))
    return found


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_field_is_documented(name: str) -> None:
    for record in _records(model_for(name)):
        assert record.avro_name.rpartition(".")[2] in DOC, record.avro_name
        missing = [field for field in record.model_fields if f"| `{field}` |" not in DOC]
        assert not missing, f"{record.__name__}: fields missing from docs/DATA_MODEL.md: {missing}"


def test_every_enum_is_documented_with_its_default() -> None:
    for enum in ALL_ENUMS:
        row = f"| `{enum.__name__}` | {', '.join(enum.symbols())} | {enum.avro_default().value} |"
        assert row in DOC, enum.__name__
