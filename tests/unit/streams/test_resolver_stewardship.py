"""Stewards' decisions in the pure resolver: must-link joins, cannot-link separates (and beats
a chain of matches), the latest decision of a pair wins whatever the order of arrival, and the
decisions survive the state round trip and a change of model.

All people here are synthetic.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import pytest

from streams.resolve import MatchDecision, Resolver, ScoringModel
from streams.resolve.stewardship import PairDecision, StewardDecisions
from tests.unit.streams.test_resolver import (
    KERRY_HOTLINE,
    KERRY_IMMIGRATION,
    KERRY_POLICE,
    OTHER_WOMAN,
    T0,
    TRUST,
    _population,
    _view,
    key_sets,
)

POLICE, IMMIGRATION, HOTLINE = "police-ctu:P-100", "immigration:IMM-7", "hope-line-ngo:H-3"
OTHER = "police-ctu:P-200"


def decision(first: str, second: str, kind: str, minutes: int = 0,
             decision_id: str | None = None) -> dict[str, Any]:
    """A decision as the deserializer returns it (``schemas.stewardship.StewardDecision``)."""
    left, right = sorted((first, second))
    ends = [dict(zip(("agency_id", "source_record_id"), key.split(":", 1), strict=True))
            for key in (left, right)]
    return {
        "decision_id": decision_id or f"00000000-0000-4000-8000-{minutes:012d}",
        "left": ends[0], "right": ends[1], "kind": kind, "steward": "A. Steward",
        "reason": "checked the files", "decided_at": T0 + timedelta(days=1, minutes=minutes),
    }


def _together(resolver: Resolver, first: str, second: str) -> bool:
    return resolver.person_of(*first.split(":", 1)) == resolver.person_of(*second.split(":", 1))


def test_must_link_joins_two_records_that_do_not_match_and_withdrawing_splits_them():
    resolver = Resolver(TRUST, clock=lambda: T0)
    resolver.upsert(KERRY_POLICE)
    resolver.upsert(OTHER_WOMAN)
    assert not _together(resolver, POLICE, OTHER)
    anchor = resolver.person_of("police-ctu", "P-100")
    changes = resolver.decide(decision(POLICE, OTHER, "MUST_LINK", 1))
    assert _together(resolver, POLICE, OTHER)
    assert resolver.person_of("police-ctu", "P-200") == anchor  # the older id survives
    [verdict] = [c for c in changes if isinstance(c, MatchDecision)]
    assert verdict.decision == "MATCH" and verdict.rule.startswith("steward_must_link:")
    assert verdict.score < 12 and verdict.features  # the evidence is still the resolver's
    # the same decision again, or an older one, changes nothing
    assert resolver.decide(decision(POLICE, OTHER, "MUST_LINK", 1)) == []
    assert resolver.decide(decision(POLICE, OTHER, "CANNOT_LINK", 0)) == []
    resolver.decide(decision(POLICE, OTHER, "WITHDRAWN", 2))
    assert not _together(resolver, POLICE, OTHER)


def test_cannot_link_splits_a_matched_pair_and_the_verdict_sticks_to_later_updates():
    resolver = Resolver(TRUST, clock=lambda: T0)
    resolver.upsert(KERRY_POLICE)
    resolver.upsert(KERRY_IMMIGRATION)
    assert _together(resolver, POLICE, IMMIGRATION)
    changes = resolver.decide(decision(POLICE, IMMIGRATION, "CANNOT_LINK", 1))
    assert not _together(resolver, POLICE, IMMIGRATION)
    [verdict] = [c for c in changes if isinstance(c, MatchDecision)]
    assert verdict.decision == "NON_MATCH" and verdict.rule.startswith("steward_cannot_link:")
    # an update of one of them scores the pair again: the steward's verdict is what is recorded
    update = resolver.upsert({**KERRY_IMMIGRATION, "source_version": 2, "aliases": ["K C"]})
    assert not _together(resolver, POLICE, IMMIGRATION)
    pair = [c for c in update if isinstance(c, MatchDecision)
            and {c.left_source_record_id, c.right_source_record_id} == {"P-100", "IMM-7"}]
    assert pair and pair[0].decision == "NON_MATCH"


def test_cannot_link_beats_a_chain_of_automatic_matches():
    resolver = Resolver(TRUST)
    for record in (KERRY_POLICE, KERRY_IMMIGRATION, KERRY_HOTLINE):
        resolver.upsert(record)
    assert len(key_sets(resolver)) == 1  # A ~ C ~ B, and A ~ B too
    resolver.decide(decision(POLICE, HOTLINE, "CANNOT_LINK", 1))
    assert not _together(resolver, POLICE, HOTLINE)
    # the bridge goes with one of them, never both; an update of the bridge changes nothing
    resolver.upsert({**KERRY_IMMIGRATION, "source_version": 2, "phones": ["+18765550101"]})
    assert not _together(resolver, POLICE, HOTLINE)
    assert len(key_sets(resolver)) == 2


def test_contradicting_decisions_keep_people_apart():
    resolver = Resolver(TRUST)
    for record in (KERRY_POLICE, OTHER_WOMAN, KERRY_HOTLINE):
        resolver.upsert(record)
    resolver.decide(decision(POLICE, HOTLINE, "CANNOT_LINK", 1))
    resolver.decide(decision(POLICE, OTHER, "MUST_LINK", 2))
    changes = resolver.decide(decision(OTHER, HOTLINE, "MUST_LINK", 3))
    assert not _together(resolver, POLICE, HOTLINE)
    # the must-link decided first is honoured, the later one that closes the gap is not
    # (although 'hope-line-ngo:H-3|police-ctu:P-200' sorts first), and its match decision
    # says so
    assert _together(resolver, POLICE, OTHER)
    [refused] = [c for c in changes if isinstance(c, MatchDecision)
                 and {c.left_source_record_id, c.right_source_record_id} == {"P-200", "H-3"}]
    assert refused.decision == "NON_MATCH"
    assert refused.rule.startswith("steward_must_link_refused:00000000-0000-4000-8000-0000000")


def test_contradicting_must_links_are_settled_by_decision_time_whatever_the_arrival_order():
    decided = [decision(POLICE, HOTLINE, "CANNOT_LINK", 1),
               decision(POLICE, OTHER, "MUST_LINK", 3), decision(OTHER, HOTLINE, "MUST_LINK", 2)]
    views = []
    for order in (decided, decided[::-1], [decided[1], decided[0], decided[2]]):
        resolver = Resolver(TRUST)
        for record in (KERRY_POLICE, OTHER_WOMAN, KERRY_HOTLINE):
            resolver.upsert(record)
        for item in order:
            resolver.decide(item)
        views.append(key_sets(resolver))
        assert _together(resolver, OTHER, HOTLINE)  # decided at minute 2, before P-100's
    assert views[0] == views[1] == views[2]


def test_a_decision_that_contradicts_those_in_force_is_named_with_the_chain():
    held = StewardDecisions()
    held.apply(decision(POLICE, HOTLINE, "CANNOT_LINK", 1))
    held.apply(decision(POLICE, OTHER, "MUST_LINK", 2))
    closing = held.conflict(decision(OTHER, HOTLINE, "MUST_LINK", 3))
    assert closing is not None and closing.cannot.pair == tuple(sorted((POLICE, HOTLINE)))
    assert [link.pair for link in closing.chain] == [  # from the cannot-link's left end
        tuple(sorted((HOTLINE, OTHER))), tuple(sorted((OTHER, POLICE)))]
    # a cannot-link between records must-links join; deciding the same pair again is not one
    held.apply(decision(OTHER, HOTLINE, "MUST_LINK", 3))
    assert held.conflict(decision(POLICE, OTHER, "CANNOT_LINK", 4)) is None  # replaces it
    assert held.conflict(decision(OTHER, "immigration:I-9", "MUST_LINK", 4)) is None
    held.apply(decision(OTHER, "immigration:I-9", "MUST_LINK", 4))
    apart = held.conflict(decision(POLICE, "immigration:I-9", "CANNOT_LINK", 5))
    assert apart is not None and [link.pair for link in apart.chain] == [
        tuple(sorted(("immigration:I-9", OTHER))), tuple(sorted((OTHER, POLICE)))]
    # the contradiction already held (P-100 = H-3 through P-200) is nobody's new fault
    assert held.conflict(decision("immigration:I-9", "police-ctu:P-9", "MUST_LINK", 6)) is None
    assert held.conflict(decision(POLICE, HOTLINE, "WITHDRAWN", 6)) is None


def _decisions() -> list[dict[str, Any]]:
    return [
        decision(POLICE, HOTLINE, "CANNOT_LINK", 1),  # splits the Kerry chain
        decision(OTHER, "immigration:I-200", "MUST_LINK", 2),  # joins across a typo'd date
        decision("police-ctu:P-300", "police-ctu:P-400", "MUST_LINK", 3),  # Andre + Andrea
        decision("police-ctu:P-300", "police-ctu:P-400", "WITHDRAWN", 4),  # ... taken back
        decision("police-ctu:P-300", "police-ctu:P-400", "MUST_LINK", 0),  # older: no effect
        decision("immigration:I-300", "hope-line-ngo:H-300", "CANNOT_LINK", 5),
        decision("police-ctu:P-999", OTHER, "MUST_LINK", 6),  # a record never seen
    ]


def test_clusters_do_not_depend_on_the_order_of_records_and_decisions():
    events: list[tuple[str, dict[str, Any]]] = [("record", r) for r in _population()]
    events += [("decision", d) for d in _decisions()]
    reference = Resolver(TRUST)
    for kind, event in events:
        (reference.upsert if kind == "record" else reference.decide)(event)
    expected_clusters, expected_view = reference.clusters(), _view(reference)
    assert not _together(reference, POLICE, HOTLINE)
    assert _together(reference, OTHER, "immigration:I-200")
    assert not _together(reference, "police-ctu:P-300", "police-ctu:P-400")
    assert not _together(reference, "immigration:I-300", "hope-line-ngo:H-300")
    for seed in range(12):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        resolver = Resolver(TRUST)
        for kind, event in shuffled:
            (resolver.upsert if kind == "record" else resolver.decide)(event)
        assert resolver.clusters() == expected_clusters, seed
        assert _view(resolver) == expected_view, seed
    # decisions first, then the records (a decision made before the records arrive)
    early = Resolver(TRUST)
    for kind, event in sorted(events, key=lambda item: item[0] != "decision"):
        (early.upsert if kind == "record" else early.decide)(event)
    assert early.clusters() == expected_clusters


def test_a_record_deleted_and_back_is_bound_by_its_decision_again():
    resolver = Resolver(TRUST)
    resolver.upsert(KERRY_POLICE)
    resolver.upsert(KERRY_IMMIGRATION)
    resolver.decide(decision(POLICE, IMMIGRATION, "CANNOT_LINK", 1))
    resolver.delete("immigration", "IMM-7")
    resolver.upsert({**KERRY_IMMIGRATION, "source_version": 2})
    assert not _together(resolver, POLICE, IMMIGRATION)


@pytest.mark.parametrize("other_model", [False, True])
def test_the_state_round_trip_keeps_the_decisions(other_model: bool):
    resolver = Resolver(TRUST, clock=lambda: T0)
    for record in _population():
        resolver.upsert(record)
    for item in _decisions():
        resolver.decide(item)
    state = json.loads(json.dumps(resolver.to_state()))
    assert state["format"] == 3 and len(state["decisions"]) == 5  # one per pair
    model = ScoringModel(match_threshold=21.0) if other_model else None
    restored = Resolver.from_state(state, trust=TRUST, model=model, clock=lambda: T0)
    assert restored.stewardship.to_state() == resolver.stewardship.to_state()
    assert not _together(restored, POLICE, HOTLINE)
    assert _together(restored, OTHER, "immigration:I-200")
    if not other_model:
        assert restored.clusters() == resolver.clusters()
        later = {**KERRY_HOTLINE, "source_version": 2, "aliases": ["Kathy C"]}
        assert restored.upsert(later) == resolver.upsert(later)
    # an older decision still loses after the round trip
    assert restored.decide(decision(POLICE, HOTLINE, "MUST_LINK", 0)) == []


def test_steward_decisions_keep_the_latest_per_pair():
    held = StewardDecisions()
    must = PairDecision.of(decision(POLICE, OTHER, "MUST_LINK", 1))
    assert held.apply(must) == must and held.must == {POLICE: {OTHER}, OTHER: {POLICE}}
    same_time_smaller_id = f"00000000-0000-4000-8000-{0:012d}"
    assert held.apply(decision(OTHER, POLICE, "CANNOT_LINK", 1,
                               decision_id=same_time_smaller_id)) is None
    assert held.apply(decision(OTHER, POLICE, "CANNOT_LINK", 2)) is not None
    assert held.must == {} and held.cannot == {POLICE: {OTHER}, OTHER: {POLICE}}
    assert held.binding(OTHER, POLICE) is not None
    with pytest.raises(ValueError, match="same record"):
        PairDecision.of(decision(POLICE, POLICE, "MUST_LINK"))
