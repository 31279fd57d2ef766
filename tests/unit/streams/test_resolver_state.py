"""A resolver restored from its state (with the saved edges and clusters, or scoring again)
is the resolver that was saved: same clusters, golden records, published state, and the same
outputs for everything that follows. Pure; all people are invented
(tests.unit.streams.test_resolver_replay's synthetic population)."""

from __future__ import annotations

import json
from typing import Any

from streams.resolve import MatchDecision, Resolver
from tests.unit.streams.test_resolver_replay import T0, TRUST, _plain, operations

CAP = 20


def _apply(resolver: Resolver, kind: str, argument: Any, decisions: bool = True) -> list[Any]:
    if kind == "upsert":
        return resolver.upsert(argument, decisions=decisions)
    return resolver.delete(*argument, decisions=decisions)


def _run(resolver: Resolver, steps: list[tuple[str, Any]]) -> list[Any]:
    return [_plain(change) for kind, argument in steps for change in _apply(resolver, kind,
                                                                            argument)]


def _restore(state: dict[str, Any], **options: Any) -> Resolver:
    options = {"trust": TRUST, "block_size_cap": CAP, "clock": lambda: T0, **options}
    return Resolver.from_state(json.loads(json.dumps(state)), **options)


def _assert_same(restored: Resolver, original: Resolver) -> None:
    assert restored.clusters() == original.clusters()
    assert restored.published == original.published
    people = sorted(original.clusters())
    assert [restored.golden(p) for p in people] == [original.golden(p) for p in people]


def _half_way() -> tuple[Resolver, list[tuple[str, Any]]]:
    steps = operations()
    cut = len(steps) // 2
    resolver = Resolver(TRUST, block_size_cap=CAP, clock=lambda: T0)
    _run(resolver, steps[:cut])
    return resolver, steps[cut:]


def test_a_restored_resolver_is_the_saved_one_and_goes_on_with_the_same_outputs():
    original, rest = _half_way()
    state = original.to_state()
    assert state["edges"] and state["clusters"]
    restored = _restore(state)
    assert restored.pairs_scored == 0  # the saved edges were used, nothing scored again
    _assert_same(restored, original)
    later = _run(original, rest)
    # what follows exercises merges, removals and decisions, not only new singletons
    kinds = {change["type"] for change in later}
    assert {"MatchDecision", "GoldenPersonMerged", "SourceMapped"} <= kinds, kinds
    assert _run(restored, rest) == later
    _assert_same(restored, original)


def test_a_state_without_edges_or_of_another_derivation_is_scored_again_to_the_same_end():
    original, rest = _half_way()
    state = original.to_state()
    old_format = {"format": 1, "records": state["records"], "published": state["published"]}
    other_model = {**state, "derived": {**state["derived"], "model": "another-model"}}
    restored = [_restore(old_format), _restore(other_model)]
    for resolver in restored:
        assert resolver.pairs_scored > 0
        _assert_same(resolver, original)
    later = _run(original, rest)
    for resolver in restored:
        assert _run(resolver, rest) == later


def test_a_state_naming_a_record_it_does_not_hold_is_refused():
    original, _ = _half_way()
    state = json.loads(json.dumps(original.to_state()))
    dropped = next(iter(state["records"]))
    del state["records"][dropped]
    try:
        Resolver.from_state(state, trust=TRUST, block_size_cap=CAP)
    except ValueError as error:
        assert "inconsistent" in str(error)
    else:
        raise AssertionError("a state missing a clustered record was accepted")


def test_a_silent_load_builds_no_decisions_and_leaves_the_same_state_and_outputs():
    steps = operations()
    loud = Resolver(TRUST, block_size_cap=CAP, clock=lambda: T0)
    silent = Resolver(TRUST, block_size_cap=CAP, clock=lambda: T0)
    for kind, argument in steps:
        expected = [c for c in _apply(loud, kind, argument) if not isinstance(c, MatchDecision)]
        assert _apply(silent, kind, argument, decisions=False) == expected
    _assert_same(silent, loud)
    assert silent.to_state() == loud.to_state()
