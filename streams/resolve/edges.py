"""The pairs worth keeping: each held record's features, its blocks and its edges.

An *edge* is a pair of held records that share a usable (within-cap) blocking key and score at
least the review threshold; a record without one has no entry. ``EdgeIndex`` keeps them as
records come (``index``), change (``reindex``, which scores only what the change can alter)
and go (``unindex``), and each of those returns the records whose edges changed: the seeds
the resolver clusters again. A block back within its cap has its members' pairs scored; the
edges that makes between two records other than the changing one are listed in ``joined``
(emptied by the resolver at each change) so that their match decisions go out with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from streams.resolve.blocking import BlockIndex, blocking_keys
from streams.resolve.records import PersonFeatures, SourceKey, person_features
from streams.resolve.scoring import (
    ScoringModel,
    match_weight,
    match_weight_reaching,
    set_field_changes,
    set_level_shift,
)


class EdgeIndex:
    """Features, blocks and edges of the held records; see the module docstring."""

    def __init__(self, model: ScoringModel, block_size_cap: int) -> None:
        self.model = model
        self.features: dict[SourceKey, PersonFeatures] = {}
        self.blocks = BlockIndex(block_size_cap)
        # score >= review threshold, both ways; a record without such a pair has no entry
        self.edges: dict[SourceKey, dict[SourceKey, float]] = {}
        self.joined: list[tuple[SourceKey, SourceKey]] = []
        self.pairs_scored = 0

    def candidate_keys(self, key: SourceKey) -> set[SourceKey]:
        """Records that share a usable (within-cap) blocking key with this one."""
        features = self.features.get(key)
        if features is None:
            return set()
        return self.blocks.candidates(key, blocking_keys(features))

    def items(self) -> Iterator[tuple[SourceKey, list[tuple[SourceKey, float]]]]:
        """Each record's edges to records sorting after it (so each pair once), lazily."""
        for key, edges in self.edges.items():
            later = [(other, score) for other, score in edges.items() if other > key]
            if later:
                yield key, later

    def restore(self, saved: Mapping[str, Any]) -> None:
        """Take saved edges (``items`` as a mapping) as they are; raises KeyError naming a
        record whose features are not held."""
        features = self.features
        for left_key, pairs in saved.items():
            left = features[left_key].key  # the key object already held, not a copy
            for right_key, score in pairs:
                right = features[right_key].key
                self.edges.setdefault(left, {})[right] = score
                self.edges.setdefault(right, {})[left] = score

    def block(self, key: SourceKey, record: Mapping[str, Any]) -> None:
        """Index a stored record's features and blocks only, scoring nothing (a state whose
        edges are saved)."""
        features = person_features(record, key)
        self.features[key] = features
        for block_key in blocking_keys(features):
            self.blocks.add(key, block_key)

    def index(self, key: SourceKey, record: Mapping[str, Any]) -> set[SourceKey]:
        """Index a stored record (``record``: its fields as a dict, cheaper to read than the
        held ``SourceRecord``) and score its candidates; returns keys whose edges changed."""
        features = person_features(record, key)
        self.features[key] = features
        touched: set[SourceKey] = set()
        block_keys = blocking_keys(features)
        for block_key in block_keys:
            touched |= self._join_block(key, block_key)
        return touched | self._score_candidates(key, block_keys)

    def reindex(self, key: SourceKey, record: Mapping[str, Any]) -> set[SourceKey]:
        """Index a new version of a held record: what ``unindex`` then ``index`` would leave
        (the same blocks and edges), with only the blocks it leaves or joins changed. Taking
        it out of a block it stays in and putting it back would, for a block one over its
        cap, score every pair of the block and then drop them all again (about 5,000 pairs
        for a block of 101 sharing a common name and birth year) at each update of any of
        its members. A pair met again through a block it stays in is not scored again when
        only contact fields changed and none of them can raise its weight: below the review
        threshold it stays there, and an edge whose levels are all the same keeps its score.
        Returns keys whose edges changed."""
        old_edges = self.edges.get(key, {})
        touched = self._drop_edges(key)
        old, features = self.features[key], person_features(record, key)
        before, after = blocking_keys(old), blocking_keys(features)
        for block_key in before - after:
            touched |= self._leave_block(key, block_key)
        self.features[key] = features
        for block_key in after - before:
            touched |= self._join_block(key, block_key)
        changed = set_field_changes(old, features)
        if changed is None:
            return touched | self._score_candidates(key, after)
        stayed = self.blocks.candidates(key, before & after)
        for other in self.blocks.candidates(key, after):
            if other in stayed:
                shift = set_level_shift(self.model, old, features, self.features[other], changed)
                score = old_edges.get(other)
                if score is None and shift <= 0:
                    continue
                if score is not None and shift == 0:
                    self.edges.setdefault(key, {})[other] = score
                    self.edges.setdefault(other, {})[key] = score
                    continue
            self._add_edge(key, other)
        return touched | set(self.edges.get(key, ()))

    def unindex(self, key: SourceKey) -> set[SourceKey]:
        """Forget a record's features and edges; returns keys whose edges changed."""
        touched = self._drop_edges(key)
        # The keys it was indexed under, derived again from its features (not held).
        for block_key in blocking_keys(self.features[key]):
            touched |= self._leave_block(key, block_key)
        del self.features[key]
        return touched

    def _drop_edges(self, key: SourceKey) -> set[SourceKey]:
        """Drop every edge of ``key``; returns the keys it had an edge to."""
        neighbours = set(self.edges.pop(key, {}))
        for other in neighbours:
            self._drop_edge(other, key)
        return neighbours

    def _score_candidates(self, key: SourceKey, block_keys: Iterable[str]) -> set[SourceKey]:
        """Score ``key`` against its candidates; returns the keys it now has an edge to."""
        for other in self.blocks.candidates(key, block_keys):
            self._add_edge(key, other)
        return set(self.edges.get(key, ()))

    def _join_block(self, key: SourceKey, block_key: str) -> set[SourceKey]:
        others = self.blocks.add(key, block_key)
        # a block just too common to block on: its pairs may lose their only justification
        return self._refresh_edges(others) if others else others

    def _leave_block(self, key: SourceKey, block_key: str) -> set[SourceKey]:
        members = self.blocks.remove(key, block_key)
        return self._connect_block(members) if members else set()  # back within the cap

    def _add_edge(self, left: SourceKey, right: SourceKey) -> bool:
        """Score a pair not yet an edge; returns whether it made one (review level)."""
        edges = self.edges.get(left)
        if edges is not None and right in edges:
            return False
        self.pairs_scored += 1
        threshold = self.model.review_threshold
        score = match_weight_reaching(
            self.model, self.features[left], self.features[right], threshold
        )
        if score is None or score < threshold:
            return False
        self.edges.setdefault(left, {})[right] = score
        self.edges.setdefault(right, {})[left] = score
        return True

    def _drop_edge(self, key: SourceKey, other: SourceKey) -> None:
        edges = self.edges[key]
        del edges[other]
        if not edges:
            del self.edges[key]

    def _refresh_edges(self, keys: Iterable[SourceKey]) -> set[SourceKey]:
        touched: set[SourceKey] = set()
        for key in keys:
            edges = self.edges.get(key)
            if not edges:
                continue
            candidates = self.candidate_keys(key)
            for other in [o for o in edges if o not in candidates]:
                self._drop_edge(key, other)
                self._drop_edge(other, key)
                touched |= {key, other}
        return touched

    def _connect_block(self, members: set[SourceKey]) -> set[SourceKey]:
        ordered = sorted(members)
        for i, left in enumerate(ordered):
            for right in ordered[i + 1:]:
                if self._add_edge(left, right):
                    self.joined.append((left, right))
        return set(members)

    def pair_score(self, left: SourceKey, right: SourceKey) -> float:
        """The pair's score: its edge's, else computed (a pair below review)."""
        known = self.edges.get(left, {}).get(right)
        if known is not None:
            return known
        return match_weight(self.model, self.features[left], self.features[right])
