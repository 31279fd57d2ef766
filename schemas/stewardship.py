"""Stewards' decisions about pairs of source records: the ``StewardDecision`` event.

A steward (a person who reviews what the resolver was not sure about, ``tipsync review``)
decides that two source records are the same person (``MUST_LINK``), are not
(``CANNOT_LINK``), or takes an earlier decision back (``WITHDRAWN``). Each decision is an Avro
event on the governed, compacted topic ``tip.stewardship.decisions``
(``TopicNames.stewardship_decisions``), keyed by its *pair key*: the two source keys
``<agency_id>:<source_record_id>`` in canonical (sorted) order joined by ``|``, so the latest
decision about a pair is the one compaction keeps. The resolver honours the latest decision of
every pair, by ``(decided_at, decision_id)``, whatever order they arrive in
(docs/RESOLUTION.md "Steward decisions").
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from pydantic import Field, model_validator

from schemas.entities import STEWARDSHIP_NAMESPACE
from schemas.enums import StewardDecisionKind
from schemas.models import ContractModel
from schemas.reconciled import SourceKey
from schemas.topics import parse_source_key
from schemas.values import Text, Timestamp, Uuid

PAIR_SEPARATOR = "|"


def canonical_pair(first: str, second: str) -> tuple[str, str]:
    """Two source keys in canonical (sorted, by code point) order; ValueError when either is
    not ``<agency_id>:<source_record_id>`` or both are the same record."""
    for key in (first, second):
        parse_source_key(key)
    if first == second:
        raise ValueError(f"a decision needs two different records, got {first!r} twice")
    return (first, second) if first < second else (second, first)


def pair_key(first: str, second: str) -> str:
    """The key of a pair's decisions: ``<a key>|<b key>``, canonical order."""
    return PAIR_SEPARATOR.join(canonical_pair(first, second))


def pair_id(first: str, second: str) -> str:
    """A short id of a pair for the command line (12 hex digits of the pair key's SHA-256;
    the review queue computes the same in SQL)."""
    return hashlib.sha256(pair_key(first, second).encode()).hexdigest()[:12]


def _key(end: SourceKey | dict[str, Any]) -> str:
    if isinstance(end, SourceKey):
        return f"{end.agency_id}:{end.source_record_id}"
    return f"{end['agency_id']}:{end['source_record_id']}"


class StewardDecision(ContractModel):
    """A steward's decision about one pair of source records."""

    avro_name: ClassVar[str] = f"{STEWARDSHIP_NAMESPACE}.StewardDecision"

    decision_id: Uuid = Field(description="UUID of this decision.")
    left: SourceKey = Field(description="The record of the pair whose key sorts first.")
    right: SourceKey = Field(description="The record of the pair whose key sorts second.")
    kind: StewardDecisionKind = Field(
        description="MUST_LINK (same person), CANNOT_LINK (different people) or WITHDRAWN "
        "(an earlier decision about the pair no longer holds).",
    )
    steward: Text = Field(description="Name of the steward who decided.")
    reason: str | None = Field(None, description="Why, in the steward's words.")
    decided_at: Timestamp = Field(
        description="When the steward decided; the latest decision of a pair wins."
    )

    @model_validator(mode="after")
    def _canonical(self) -> Self:
        left, right = _key(self.left), _key(self.right)
        if canonical_pair(left, right) != (left, right):
            raise ValueError(
                f"the pair is not in canonical order: {left!r} must sort before {right!r} "
                "(build decisions with schemas.stewardship.steward_decision)"
            )
        return self


def decision_pair_key(record: dict[str, Any]) -> str:
    """The pair key of a decoded decision record."""
    return pair_key(_key(record["left"]), _key(record["right"]))


def steward_decision(
    first: str, second: str, kind: StewardDecisionKind | str, steward: str,
    reason: str | None = None, *, decided_at: datetime | None = None,
    decision_id: str | None = None,
) -> StewardDecision:
    """A validated decision about the pair ``first``, ``second`` (source keys, any order)."""
    left, right = canonical_pair(first, second)
    ends = []
    for key in (left, right):
        agency_id, record_id = parse_source_key(key)
        ends.append(SourceKey(agency_id=agency_id, source_record_id=record_id))
    return StewardDecision(
        decision_id=decision_id or str(uuid.uuid4()), left=ends[0], right=ends[1],
        kind=StewardDecisionKind(kind), steward=steward, reason=reason or None,
        decided_at=decided_at or datetime.now(UTC),
    )
