"""What resolving one record changes, as plain values the stream app publishes.

- ``GoldenPersonUpserted``  -> ``tip.reconciled.person``, key person_id, value GoldenPerson
- ``GoldenPersonMerged``    -> ``tip.reconciled.person``, the GoldenPerson value with only
  person_id, golden_version and merged_into set
- ``GoldenPersonRemoved``   -> ``tip.reconciled.person``, a tombstone (no source left)
- ``SourceMapped``          -> the source-to-golden mapping (person_id None once deleted)
- ``MatchDecision``         -> ``tip.reconciled.match_decision``
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class GoldenPersonUpserted:
    person_id: str
    golden_version: int
    value: dict[str, Any]  # GoldenPerson, golden_version included


@dataclass(frozen=True)
class GoldenPersonMerged:
    person_id: str
    golden_version: int
    merged_into: str

    @property
    def value(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id, "golden_version": self.golden_version,
            "merged_into": self.merged_into, "given_name": None, "middle_name": None,
            "family_name": None, "aliases": [], "date_of_birth": None, "dob_precision": None,
            "sex": "UNKNOWN", "citizenship": [], "identifiers": [], "phones": [], "emails": [],
            "addresses": [], "classification": None, "first_seen": None, "last_updated": None,
            "sources": [], "lineage": [],
        }


@dataclass(frozen=True)
class GoldenPersonRemoved:
    person_id: str


@dataclass(frozen=True)
class SourceMapped:
    agency_id: str
    source_record_id: str
    source_version: int
    person_id: str | None  # None: the source record was deleted


@dataclass(frozen=True)
class MatchDecision:
    left_agency_id: str
    left_source_record_id: str
    right_agency_id: str
    right_source_record_id: str
    score: float
    features: dict[str, float]
    rule: str
    decision: str  # MATCH | NON_MATCH | REVIEW
    decided_at: datetime

    @property
    def value(self) -> dict[str, Any]:
        return {
            "left": {"agency_id": self.left_agency_id,
                     "source_record_id": self.left_source_record_id},
            "right": {"agency_id": self.right_agency_id,
                      "source_record_id": self.right_source_record_id},
            "score": self.score, "features": dict(self.features), "rule": self.rule,
            "decision": self.decision, "decided_at": self.decided_at,
        }


Change = (
    GoldenPersonUpserted | GoldenPersonMerged | GoldenPersonRemoved | SourceMapped | MatchDecision
)
