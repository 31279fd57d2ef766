"""Stewards' decisions as the resolver holds them: the latest decision of every pair.

A steward's decision (``schemas.stewardship.StewardDecision``) binds two source keys:
``MUST_LINK`` (the same person: their clusters are joined, whatever the scores),
``CANNOT_LINK`` (different people: they never end in one cluster, however strong a chain of
automatic matches between them) or ``WITHDRAWN`` (the pair is the resolver's alone again).

Order independence: of all the decisions about a pair, the one with the greatest
``(decided_at, decision_id)`` is in force, so the decisions held are a function of the *set*
of decisions seen, not of their order (an older one arriving late changes nothing; the same
one again is a no-op). A decision may name records the resolver does not hold (yet): it is
kept and binds them when they arrive. Withdrawn decisions are kept too (they must go on
beating older ones), so what is held grows with the number of pairs ever decided: a few
hundred bytes per decision, and decisions are made by people.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

MUST_LINK: Final = "MUST_LINK"
CANNOT_LINK: Final = "CANNOT_LINK"
WITHDRAWN: Final = "WITHDRAWN"
KINDS: Final = (MUST_LINK, CANNOT_LINK, WITHDRAWN)

Pair = tuple[str, str]  # two source keys, the smaller first


def _end(end: Mapping[str, Any] | str) -> str:
    if isinstance(end, str):
        return end
    return f"{end['agency_id']}:{end['source_record_id']}"


@dataclass(frozen=True)
class PairDecision:
    """One steward decision about a pair (``left`` < ``right``)."""

    left: str
    right: str
    kind: str
    decision_id: str
    decided_at: datetime
    steward: str
    reason: str | None = None

    @classmethod
    def of(cls, value: Mapping[str, Any]) -> PairDecision:
        """From a decoded ``StewardDecision`` record or ``to_dict`` data."""
        left, right = sorted((_end(value["left"]), _end(value["right"])))
        if left == right:
            raise ValueError("a steward decision names the same record twice")
        kind = value["kind"]
        if kind not in KINDS:
            raise ValueError(f"steward decision kind {kind!r} is not one of {KINDS}")
        decided_at = value["decided_at"]
        if isinstance(decided_at, str):
            decided_at = datetime.fromisoformat(decided_at)
        return cls(left, right, kind, str(value["decision_id"]), decided_at,
                   str(value["steward"]), value.get("reason"))

    @property
    def pair(self) -> Pair:
        return self.left, self.right

    @property
    def order(self) -> tuple[datetime, str]:
        return self.decided_at, self.decision_id

    @property
    def rule(self) -> str:
        """The rule a match decision names when this decision made it."""
        return f"steward_{self.kind.lower()}:{self.decision_id}"

    def verdict(self, joined: bool) -> tuple[str, str]:
        """The decision and rule of a match decision about the pair while this binds it;
        ``joined``: the two records are one person now. A must-link they are not joined
        under was refused: it contradicts cannot-links decided before it."""
        if self.kind == MUST_LINK and not joined:
            return "NON_MATCH", (
                f"steward_must_link_refused:{self.decision_id}: it would make one person of "
                "records a steward's cannot-link keeps apart"
            )
        return ("MATCH" if self.kind == MUST_LINK else "NON_MATCH"), self.rule

    def to_dict(self) -> dict[str, Any]:
        return {
            "left": self.left, "right": self.right, "kind": self.kind,
            "decision_id": self.decision_id, "decided_at": self.decided_at.isoformat(),
            "steward": self.steward, "reason": self.reason,
        }


class StewardDecisions:
    """The decision in force for every pair ever decided, and the must / cannot links."""

    def __init__(self) -> None:
        self.latest: dict[Pair, PairDecision] = {}
        self.must: dict[str, set[str]] = {}
        self.cannot: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self.latest)

    def apply(self, value: Mapping[str, Any] | PairDecision) -> PairDecision | None:
        """Take a decision in; returns it when it is now the one in force for its pair and
        changes what binds the pair (None: older than the one held, or the same binding)."""
        decision = value if isinstance(value, PairDecision) else PairDecision.of(value)
        held = self.latest.get(decision.pair)
        if held is not None and decision.order <= held.order:
            return None
        self.latest[decision.pair] = decision
        before = held.kind if held is not None else WITHDRAWN
        if before == decision.kind:
            return None
        left, right = decision.pair
        for links in (self.must, self.cannot):
            _unlink(links, left, right)
        if decision.kind == MUST_LINK:
            self.must.setdefault(left, set()).add(right)
            self.must.setdefault(right, set()).add(left)
        elif decision.kind == CANNOT_LINK:
            self.cannot.setdefault(left, set()).add(right)
            self.cannot.setdefault(right, set()).add(left)
        return decision

    def binding(self, left: str, right: str) -> PairDecision | None:
        """The must- or cannot-link in force for a pair, None when none binds it."""
        decision = self.latest.get((left, right) if left < right else (right, left))
        if decision is None or decision.kind == WITHDRAWN:
            return None
        return decision

    def must_pairs(self, keys: Iterable[str]) -> list[Pair]:
        """Must-link pairs with both ends among ``keys`` (a set), the earliest decided first
        (by ``(decided_at, decision_id)``: of two must-links that contradict a cannot-link,
        the one decided first is honoured, whatever the order they arrived in)."""
        held = keys if isinstance(keys, set | frozenset) else set(keys)
        pairs = [(key, other) for key in held for other in self.must.get(key, ())
                 if key < other and other in held]
        return sorted(pairs, key=lambda pair: self.latest[pair].order)

    def conflict(self, value: Mapping[str, Any] | PairDecision) -> Conflict | None:
        """What a new decision would contradict, None when nothing: a must-link that would
        make one person of two records a cannot-link keeps apart (through the must-links in
        force), or a cannot-link between two records must-links join. A decision replaces
        the one in force for its own pair, so changing one's mind about a pair is never a
        conflict, nor is a withdrawal; contradictions already held (two must-links decided
        at once) are the resolver's to settle and are not this decision's fault."""
        decision = value if isinstance(value, PairDecision) else PairDecision.of(value)
        if decision.kind == WITHDRAWN:
            return None
        must: dict[str, dict[str, PairDecision]] = {}
        cannot: list[PairDecision] = []
        for pair, held in self.latest.items():
            if pair != decision.pair:
                _bind(held, must, cannot)
        if decision.kind == CANNOT_LINK:
            chain = _must_chain(must, decision.left, decision.right)
            return None if chain is None else Conflict(decision, decision, chain)
        left, right = _joined(must, decision.left), _joined(must, decision.right)
        if decision.right in left:
            return None  # one person already
        _bind(decision, must, cannot)
        for apart in sorted(cannot, key=lambda held: held.order):
            if (apart.left in left and apart.right in right) or (
                apart.left in right and apart.right in left
            ):
                chain = _must_chain(must, apart.left, apart.right)
                assert chain is not None  # both sides are joined by the new must-link
                return Conflict(decision, apart, chain)
        return None

    def to_state(self) -> list[dict[str, Any]]:
        return [decision.to_dict() for _, decision in sorted(self.latest.items())]

    def __iter__(self) -> Iterator[PairDecision]:
        return iter(self.latest.values())


@dataclass(frozen=True)
class Conflict:
    """``decision`` would make ``cannot``'s two records one person through ``chain`` (the
    must-links from ``cannot.left`` to ``cannot.right``, in path order; ``decision`` is
    one of them or is ``cannot``)."""

    decision: PairDecision
    cannot: PairDecision
    chain: list[PairDecision]


def _bind(decision: PairDecision, must: dict[str, dict[str, PairDecision]],
          cannot: list[PairDecision]) -> None:
    if decision.kind == MUST_LINK:
        must.setdefault(decision.left, {})[decision.right] = decision
        must.setdefault(decision.right, {})[decision.left] = decision
    elif decision.kind == CANNOT_LINK:
        cannot.append(decision)


def _joined(must: dict[str, dict[str, PairDecision]], start: str) -> set[str]:
    """The records must-links join to ``start`` (itself included)."""
    found, frontier = {start}, [start]
    while frontier:
        for other in must.get(frontier.pop(), {}):
            if other not in found:
                found.add(other)
                frontier.append(other)
    return found


def _must_chain(must: dict[str, dict[str, PairDecision]], start: str,
                goal: str) -> list[PairDecision] | None:
    """The must-links of a shortest path from ``start`` to ``goal`` (breadth first, partners
    in key order: the same path whatever the order decisions arrived in), or None."""
    came_from: dict[str, tuple[str, PairDecision] | None] = {start: None}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for key in frontier:
            for other in sorted(must.get(key, {})):
                if other not in came_from:
                    came_from[other] = (key, must[key][other])
                    following.append(other)
        if goal in came_from:
            chain: list[PairDecision] = []
            step = came_from[goal]
            while step is not None:
                chain.append(step[1])
                step = came_from[step[0]]
            return chain[::-1]
        frontier = following
    return None


def _unlink(links: dict[str, set[str]], left: str, right: str) -> None:
    for a, b in ((left, right), (right, left)):
        partners = links.get(a)
        if partners is not None:
            partners.discard(b)
            if not partners:
                del links[a]
