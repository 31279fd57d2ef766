"""Which match decisions a change publishes: a pair gets one when its verdict can have moved
(a new or rescored pair, a steward's binding, a pair a block back within its cap joins), not
at every update of one of its records.
All people here are synthetic.
"""

from __future__ import annotations

from typing import Any

from streams.resolve import MatchDecision, Resolver
from tests.unit.streams.test_resolver import (
    KERRY_IMMIGRATION,
    KERRY_POLICE,
    T0,
    TRUST,
    person,
)
from tests.unit.streams.test_resolver_stewardship import IMMIGRATION, POLICE, decision


def decisions(changes: list[Any]) -> list[tuple[str, str, str]]:
    """(left key, right key, decision) of each match decision, in publishing order."""
    return [(f"{c.left_agency_id}:{c.left_source_record_id}",
             f"{c.right_agency_id}:{c.right_source_record_id}", c.decision)
            for c in changes if isinstance(c, MatchDecision)]


def test_a_new_e_mail_address_publishes_the_golden_person_but_no_decision_again():
    resolver = Resolver(TRUST, clock=lambda: T0)
    resolver.upsert(KERRY_POLICE)
    assert decisions(resolver.upsert(KERRY_IMMIGRATION)) == [(IMMIGRATION, POLICE, "MATCH")]

    changes = resolver.upsert(dict(KERRY_IMMIGRATION, source_version=2,
                                   emails=["kathy.new@example.org"]))
    assert decisions(changes) == []
    assert any(c.value.get("emails") == ["kathy.new@example.org"]
               for c in changes if hasattr(c, "value"))


def test_an_update_that_moves_a_pairs_score_publishes_the_pair_again():
    resolver = Resolver(TRUST, clock=lambda: T0)
    resolver.upsert(KERRY_POLICE)
    first = [c for c in resolver.upsert(KERRY_IMMIGRATION) if isinstance(c, MatchDecision)]
    # the typo in the family name corrected: the pair's evidence is stronger
    changes = resolver.upsert(dict(KERRY_IMMIGRATION, source_version=2,
                                   family_name="Campbell"))
    again = [c for c in changes if isinstance(c, MatchDecision)]
    assert decisions(again) == [(IMMIGRATION, POLICE, "MATCH")]
    assert again[0].score > first[0].score


def test_a_pair_a_steward_binds_gets_the_stewards_verdict_at_every_update():
    resolver = Resolver(TRUST, clock=lambda: T0)
    resolver.upsert(KERRY_POLICE)
    resolver.upsert(KERRY_IMMIGRATION)
    resolver.decide(decision(POLICE, IMMIGRATION, "CANNOT_LINK", 1))

    changes = resolver.upsert(dict(KERRY_IMMIGRATION, source_version=2,
                                   emails=["kathy.new@example.org"]))
    published = [c for c in changes if isinstance(c, MatchDecision)]
    # the steward's verdict first (the clustering's veto of the pair follows it, as before)
    assert decisions(published)[0] == (IMMIGRATION, POLICE, "NON_MATCH")
    assert published[0].rule == "steward_cannot_link:00000000-0000-4000-8000-000000000001"
    assert {c.decision for c in published} == {"NON_MATCH"}


def test_a_block_back_within_its_cap_publishes_the_decisions_of_the_pairs_it_joins():
    # Five namesakes born the same day: every block they share is past a cap of 4, so they
    # have no pair (loaded as a rebuild loads). Deleting one brings the name blocks back to
    # 4: their pairs are scored then, and their decisions go out with the delete (they used
    # to wait for an update of one of the pair, which, if it left the score as it was, would
    # publish nothing now).
    namesakes = [person("police-ctu", f"P-{n}", n, given_name="John", family_name="Smith",
                        date_of_birth="1980-01-01") for n in range(5)]
    resolver = Resolver(TRUST, block_size_cap=4, clock=lambda: T0)
    for record in namesakes:
        resolver.upsert(record, decisions=False)
    assert list(resolver.edge_items()) == []

    changes = resolver.delete("police-ctu", "P-4")
    pairs = {(left, right) for left, right, _ in decisions(changes)}
    assert pairs == {(f"police-ctu:P-{a}", f"police-ctu:P-{b}")
                     for a in range(4) for b in range(a + 1, 4)}
