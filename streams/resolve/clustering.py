"""Clustering one connected component of matching pairs, with a guard against chaining.

Connected components alone chain: A matches B through a shared name and date of birth, B
matches C through a shared phone, and A and C, two different people, end up as one. Here
pairs are merged strongest first (ties broken by the record keys, so the result depends only
on the records, never on their arrival order), and two clusters merge only if the merged
cluster still holds together as a whole:

- the *average* score over every cross pair (one record from each side) reaches
  ``mean_threshold``: the clusters agree overall, not through one link;
- *no* cross pair scores below ``floor``: no two members carry more evidence of being
  different people than of being the same one.

Stewards' decisions (``streams.resolve.stewardship``) come first: the must-linked pairs are
joined before any automatic pair, in the order given (the earliest decided first) and
whatever their scores, and no merge, automatic or must-link, may put two cannot-linked
records in one cluster (checked on every cross pair, so a cannot-link also beats a chain
A~C~B of matches). Must-links that would join a cannot-linked pair contradict it: the one
that would close the gap, the latest decided of them, is not applied (keeping people apart is
the safe side), the same whatever the order of arrival.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ChainingGuard:
    mean_threshold: float
    floor: float


@dataclass(frozen=True)
class Vetoed:
    """A matching pair that the guard kept apart, with the reason (for a match decision)."""

    left: str
    right: str
    score: float
    reason: str


def _cannot_linked(
    left: list[str], right: list[str], cannot: Mapping[str, set[str]]
) -> tuple[str, str] | None:
    """A cannot-linked pair across two clusters, or None."""
    if not cannot:
        return None
    small, large = (left, right) if len(left) <= len(right) else (right, left)
    others = set(large)
    for key in small:
        for other in cannot.get(key, ()):
            if other in others:
                return key, other
    return None


def cluster_component(
    records: Iterable[str],
    match_edges: Iterable[tuple[float, str, str]],
    pair_score: Callable[[str, str], float],
    guard: ChainingGuard,
    must_links: Iterable[tuple[str, str]] = (),
    cannot: Mapping[str, set[str]] | None = None,
) -> tuple[list[list[str]], list[Vetoed]]:
    """Clusters (each sorted) of one component, and the matching pairs the guard or a
    cannot-link vetoed. ``must_links``: steward-joined pairs (both ends among ``records``),
    in the order they are to be applied;
    ``cannot``: key -> the keys a steward said are other people."""
    cluster_of: dict[str, list[str]] = {key: [key] for key in sorted(records)}
    vetoed: list[Vetoed] = []
    cannot = cannot or {}

    def merge(left_cluster: list[str], right_cluster: list[str]) -> None:
        merged = left_cluster + right_cluster
        for key in merged:
            cluster_of[key] = merged

    for left, right in must_links:
        left_cluster, right_cluster = cluster_of[left], cluster_of[right]
        if left_cluster is not right_cluster and not _cannot_linked(
            left_cluster, right_cluster, cannot
        ):
            merge(left_cluster, right_cluster)
    for score, left, right in sorted(match_edges, key=lambda edge: (-edge[0], edge[1], edge[2])):
        left_cluster, right_cluster = cluster_of[left], cluster_of[right]
        if left_cluster is right_cluster:
            continue
        apart = _cannot_linked(left_cluster, right_cluster, cannot)
        if apart is not None:
            vetoed.append(Vetoed(left, right, score, (
                f"steward_cannot_link: {apart[0]} and {apart[1]} are different people by a "
                "steward's decision"
            )))
            continue
        cross = [pair_score(a, b) for a in left_cluster for b in right_cluster]
        mean = sum(cross) / len(cross)
        lowest = min(cross)
        if lowest < guard.floor:
            vetoed.append(Vetoed(left, right, score, (
                f"anti_chaining_guard: a member pair across the two clusters scores "
                f"{lowest:.1f}, below the floor {guard.floor:.1f}"
            )))
            continue
        if mean < guard.mean_threshold:
            vetoed.append(Vetoed(left, right, score, (
                f"anti_chaining_guard: the clusters' average cross score {mean:.1f} is below "
                f"{guard.mean_threshold:.1f}"
            )))
            continue
        merge(left_cluster, right_cluster)
    seen: set[int] = set()
    clusters: list[list[str]] = []
    for members in cluster_of.values():
        if id(members) not in seen:
            seen.add(id(members))
            clusters.append(sorted(members))
    return sorted(clusters), vetoed
