"""The governed schemas: every schema name, its subject, its model and its committed ``.avsc``.

Schema names: ``"<entity>"`` for agency events, ``"reconciled.<entity>"`` for golden records,
``"reconciled.match_decision"``, ``"stewardship.decision"`` (a steward's decision),
``"outbound.message"`` (a message of an agency's feed). The subject of each is its Avro full
name (subject naming by record name), so one subject serves every agency topic of an entity.

The schema that is registered and written is the committed file ``schemas/avsc/<subject>.avsc``
— the reviewed contract; the unit tests fail when it differs from what the models generate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import fastavro

from schemas.avro import avro_schema, schema_file_text, schema_text
from schemas.entities import (
    ENTITIES,
    FEED_MESSAGE,
    RECONCILED_OUTPUTS,
    RECONCILED_PREFIX,
    SCHEMA_NAMES,
    STEWARD_DECISION,
)
from schemas.models import EVENT_MODELS, ContractModel
from schemas.outbound import FeedMessage
from schemas.reconciled import RECONCILED_MODELS
from schemas.stewardship import StewardDecision

AVSC_DIRECTORY = Path(__file__).resolve().parent / "avsc"


@dataclass(frozen=True)
class GovernedSchema:
    name: str
    model: type[ContractModel]
    schema: dict[str, Any] = field(repr=False)

    @property
    def subject(self) -> str:
        return self.model.avro_name

    @cached_property
    def text(self) -> str:
        return schema_text(self.schema)

    @cached_property
    def parsed(self) -> Any:
        return fastavro.parse_schema(self.schema)


def model_for(name: str) -> type[ContractModel]:
    """The model of a schema name; ValueError listing the names when it is not one."""
    if name in ENTITIES:
        return EVENT_MODELS[name]
    if name == STEWARD_DECISION:
        return StewardDecision
    if name == FEED_MESSAGE:
        return FeedMessage
    output = name.removeprefix(RECONCILED_PREFIX)
    if name.startswith(RECONCILED_PREFIX) and output in RECONCILED_OUTPUTS:
        return RECONCILED_MODELS[output]
    raise ValueError(
        f"'{name}' is not a schema name of the contract "
        f"(expected one of: {', '.join(SCHEMA_NAMES)})"
    )


def avsc_path(subject: str, directory: Path = AVSC_DIRECTORY) -> Path:
    return directory / f"{subject}.avsc"


@cache
def governed_schema(name: str) -> GovernedSchema:
    """The committed schema of ``name`` (e.g. ``"person"``, ``"reconciled.person"``)."""
    model = model_for(name)
    path = avsc_path(model.avro_name)
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} is missing; run `tipsync schemas export` to write the .avsc files"
        ) from None
    return GovernedSchema(name=name, model=model, schema=schema)


def all_schemas() -> list[GovernedSchema]:
    return [governed_schema(name) for name in SCHEMA_NAMES]


def schema_for_subject(subject: str) -> GovernedSchema | None:
    """The governed schema registered under ``subject``, or None for a foreign subject."""
    for governed in all_schemas():
        if governed.subject == subject:
            return governed
    return None


def export_avsc(directory: Path = AVSC_DIRECTORY) -> list[Path]:
    """Write the ``.avsc`` of every schema name as the models generate it; return changed files."""
    directory.mkdir(parents=True, exist_ok=True)
    changed: list[Path] = []
    for name in SCHEMA_NAMES:
        model = model_for(name)
        path = avsc_path(model.avro_name, directory)
        text = schema_file_text(avro_schema(model))
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed
