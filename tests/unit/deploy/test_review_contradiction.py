"""``review decide`` refuses a decision that contradicts the decisions in force, with a
sentence naming them and the way out (``deploy.stewardship.review.contradiction``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from deploy.stewardship.review import contradiction
from schemas.stewardship import StewardDecision, decision_pair_key, steward_decision

T0 = datetime(2026, 5, 1, 9, tzinfo=UTC)
A, B, C = "police-ctu:P-1", "immigration:I-1", "customs:C-1"


def _decided(first: str, second: str, kind: str, minutes: int) -> StewardDecision:
    return steward_decision(first, second, kind, "A. Steward", "files checked",
                            decided_at=T0 + timedelta(minutes=minutes),
                            decision_id=f"00000000-0000-4000-8000-{minutes:012d}")


def _in_force(*decisions: StewardDecision) -> dict[str, dict[str, Any]]:
    return {decision_pair_key(d.to_record()): d.to_record() for d in decisions}


def test_a_must_link_closing_a_chain_across_a_cannot_link_is_refused_naming_both():
    held = _in_force(_decided(A, B, "CANNOT_LINK", 1), _decided(A, C, "MUST_LINK", 2))
    refused = contradiction(held, _decided(C, B, "MUST_LINK", 3))
    assert refused is not None
    assert refused.startswith(f"{C} and {B} are not joined: {B} and {A} are different "
                              "people by decision 00000000-0000-4000-8000-000000000001 "
                              "(A. Steward, 2026-05-01 09:01 UTC)")
    assert f"the must-links {B} = {C} (this decision), {C} = {A} (decision " in refused
    assert f"tipsync review decide --withdraw {B} {A})" in refused


def test_a_cannot_link_between_must_linked_records_is_refused():
    held = _in_force(_decided(A, C, "MUST_LINK", 1), _decided(C, B, "MUST_LINK", 2))
    refused = contradiction(held, _decided(A, B, "CANNOT_LINK", 3))
    assert refused is not None and refused.startswith(f"{B} and {A} are not separated")
    assert "make them one person" in refused


def test_a_change_of_mind_about_the_same_pair_and_a_withdrawal_are_not_contradictions():
    held = _in_force(_decided(A, B, "CANNOT_LINK", 1), _decided(A, C, "MUST_LINK", 2))
    assert contradiction(held, _decided(A, B, "MUST_LINK", 3)) is None
    assert contradiction(held, _decided(A, C, "CANNOT_LINK", 3)) is None
    assert contradiction(held, _decided(A, B, "WITHDRAWN", 3)) is None
    assert contradiction({}, _decided(A, B, "MUST_LINK", 3)) is None
