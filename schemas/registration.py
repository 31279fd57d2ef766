"""Governance of the registry: register the contract, and check local schemas against it.

``register_all`` is what ``tipsync schemas register`` runs: every governed schema under its
subject (the Avro full name), with the subject's compatibility rule set first.

The rule is FULL_TRANSITIVE: BACKWARD_TRANSITIVE (a new schema reads every older version's
data, so consumers can upgrade first) *and* FORWARD_TRANSITIVE (older schemas read the new
data). The forward half matters here because a dozen agencies upgrade their producers on
their own schedules, ahead of the central consumers; it is also what refuses the removal of
a required field, which Avro's backward rule alone accepts. Adding an optional field with a
default, or an enum symbol (every enum has a default symbol), passes both. ``check_all`` is
``tipsync schemas check``: for each schema, is the local version already registered,
compatible with what the registry holds, or refused, and why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from schemas.catalogue import all_schemas
from schemas.errors import SchemaIncompatibleError
from schemas.registry import SchemaRegistry

COMPATIBILITY_LEVEL = "FULL_TRANSITIVE"


@dataclass(frozen=True)
class LocalSchema:
    """A schema as this checkout has it: name, subject and the exact text to register."""

    name: str
    subject: str
    text: str


def local_schemas() -> list[LocalSchema]:
    return [LocalSchema(schema.name, schema.subject, schema.text) for schema in all_schemas()]


class Status(StrEnum):
    REGISTERED = "registered"  # register: a new version was added
    UNCHANGED = "unchanged"  # register / check: this exact schema is already registered
    COMPATIBLE = "compatible"  # check: registering it would be accepted
    NEW_SUBJECT = "new subject"  # check: the subject does not exist yet
    INCOMPATIBLE = "incompatible"  # the registry refuses it
    WRONG_LEVEL = "wrong compatibility level"  # check: registered, with another rule


FAILED = frozenset({Status.INCOMPATIBLE, Status.WRONG_LEVEL})


@dataclass(frozen=True)
class SchemaResult:
    name: str
    subject: str
    status: Status
    schema_id: int | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status not in FAILED

    def describe(self) -> str:
        line = f"{self.subject:<40} {self.status.value}"
        if self.schema_id is not None:
            line += f" (id {self.schema_id})"
        for reason in self.reasons:
            line += f"\n    {reason}"
        return line


def register_all(
    registry: SchemaRegistry, schemas: Iterable[LocalSchema] | None = None
) -> list[SchemaResult]:
    """Register every governed schema (idempotent). A refused schema is reported, not raised,
    so one bad schema does not hide the state of the others."""
    results = []
    for schema in local_schemas() if schemas is None else schemas:
        existing = registry.lookup(schema.subject, schema.text)
        if existing is not None:
            if registry.compatibility(schema.subject) != COMPATIBILITY_LEVEL:
                registry.set_compatibility(schema.subject, COMPATIBILITY_LEVEL)
            results.append(SchemaResult(schema.name, schema.subject, Status.UNCHANGED, existing))
            continue
        # The rule goes on before the first version, so no version ever escapes it.
        registry.set_compatibility(schema.subject, COMPATIBILITY_LEVEL)
        try:
            schema_id = registry.register(schema.subject, schema.text)
        except SchemaIncompatibleError as error:
            results.append(
                SchemaResult(schema.name, schema.subject, Status.INCOMPATIBLE, None, error.reasons)
            )
            continue
        results.append(SchemaResult(schema.name, schema.subject, Status.REGISTERED, schema_id))
    return results


def check_all(
    registry: SchemaRegistry, schemas: Iterable[LocalSchema] | None = None
) -> list[SchemaResult]:
    """Compare every local schema with the registry, without changing anything."""
    results = []
    for schema in local_schemas() if schemas is None else schemas:
        latest = registry.latest(schema.subject)
        if latest is None:
            results.append(SchemaResult(schema.name, schema.subject, Status.NEW_SUBJECT))
            continue
        level = registry.compatibility(schema.subject)
        if level != COMPATIBILITY_LEVEL:
            results.append(
                SchemaResult(
                    schema.name,
                    schema.subject,
                    Status.WRONG_LEVEL,
                    latest.schema_id,
                    [
                        f"the subject's level is {level or 'the global default'}, not "
                        f"{COMPATIBILITY_LEVEL}; run `tipsync schemas register` to set it"
                    ],
                )
            )
            continue
        existing = registry.lookup(schema.subject, schema.text)
        if existing is not None:
            results.append(SchemaResult(schema.name, schema.subject, Status.UNCHANGED, existing))
            continue
        verdict = registry.check_compatibility(schema.subject, schema.text)
        status = Status.COMPATIBLE if verdict.compatible else Status.INCOMPATIBLE
        results.append(SchemaResult(schema.name, schema.subject, status, None, verdict.reasons))
    return results
