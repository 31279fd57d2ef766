"""The incremental resolver: one source record in, the golden-person changes out.

Order independence holds by construction. Everything the resolver publishes is a pure
function of the *set* of source records it currently holds:

- candidate pairs: two records sharing a blocking key whose block is within the cap (when a
  block crosses the cap, in either direction, its members' pairs are re-derived);
- pair scores: a fixed ``ScoringModel`` applied to the two records;
- clusters: the guarded, strongest-first clustering of each connected component of matching
  pairs, with ties broken by source key, under the stewards' decisions in force (must-links
  join, cannot-links separate: ``streams.resolve.stewardship``, ``decide``), which are a pure
  function of the set of decisions seen;
- golden id: uuid5 of the cluster's earliest member by (first event time, agency, record id);
- golden record: survivorship with deterministic tie-breaks.

Each change only re-clusters the components it touched, so the work per record is bounded
by the size of its neighbourhood, not by the number of people already resolved.

The persistent state (``to_state``) is plain JSON-safe data: the source records, what was
last published per golden id, and what is expensive to derive again: the edges (pair scores
at or above the review threshold) and the clusters, with the model fingerprint, block cap and
guard they were derived with. ``from_state`` takes the edges and clusters as they are when
those match its own (only the blocks and features, cheap, are derived again: a restart at a
million people no longer scores every candidate pair); otherwise, or for a state of format 1
(no edges), it scores and clusters everything again.

Memory: a million people is the target, so what is held per record is kept small (see
docs/RESOLUTION.md, "Memory"): records in slots (``SourceRecord``), a block with one member
holds that member's key itself rather than a set, a record's blocking keys are derived again
from its features when it changes instead of being held, a record with no edge has no edge
dict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from streams.resolve.blocking import DEFAULT_BLOCK_SIZE_CAP
from streams.resolve.changes import (
    Change,
    GoldenPersonMerged,
    GoldenPersonRemoved,
    GoldenPersonUpserted,
    MatchDecision,
    SourceMapped,
)
from streams.resolve.clustering import ChainingGuard, Vetoed, cluster_component
from streams.resolve.edges import EdgeIndex
from streams.resolve.model_file import fingerprint
from streams.resolve.records import SourceKey, SourceRecord, source_key, source_record_from_event
from streams.resolve.scoring import PairScore, ScoringModel, score_pair
from streams.resolve.stewardship import StewardDecisions
from streams.resolve.survivorship import TrustRanks, golden_id, golden_person

# 3: the state carries the stewards' decisions; 2: the edges and clusters (and what they were
# derived with); 1 had neither.
STATE_FORMAT = 3
READABLE_STATE_FORMATS = (1, 2, 3)


def _default_clock() -> datetime:
    return datetime.now(UTC)


def _content_hash(value: Mapping[str, Any]) -> str:
    # Compared only with hashes this code computed (published state is rebuilt, never read
    # back from another version), so orjson's text is as good as the standard library's and
    # ~10x cheaper.
    return hashlib.sha256(orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS)).hexdigest()



class Resolver:
    """Resolves people one source record at a time; see the module docstring."""

    def __init__(
        self,
        trust: TrustRanks | None = None,
        model: ScoringModel | None = None,
        *,
        block_size_cap: int = DEFAULT_BLOCK_SIZE_CAP,
        guard: ChainingGuard | None = None,
        clock: Callable[[], datetime] = _default_clock,
    ) -> None:
        self.trust: TrustRanks = trust or {}
        self.model = model or ScoringModel()
        # A merge must keep the cluster's average cross pair at review level, and no member
        # pair may carry net evidence that they are different people.
        self.guard = guard or ChainingGuard(mean_threshold=self.model.review_threshold, floor=0.0)
        self.clock = clock
        # persistent
        self.records: dict[SourceKey, SourceRecord] = {}
        self.published: dict[str, dict[str, Any]] = {}  # person_id -> version, hash, status
        self.stewardship = StewardDecisions()  # the stewards' decision in force per pair
        # derived
        self._edge_index = EdgeIndex(self.model, block_size_cap)
        # the index's own dicts, read here at every change
        self._features = self._edge_index.features
        self._blocks = self._edge_index.blocks
        self._edges = self._edge_index.edges
        self._person_of: dict[SourceKey, str] = {}
        self._members: dict[str, tuple[SourceKey, ...]] = {}  # sorted

    # ----------------------------------------------------------------- public API

    def upsert(self, event: Mapping[str, Any], *, decisions: bool = True) -> list[Change]:
        """Add or update one source record; returns what changed, in publishing order.

        ``decisions=False`` leaves out the match decisions (a rebuild publishes nothing and
        would throw them away); everything else, and the state, is the same."""
        fields = source_record_from_event(event)
        key = source_key(fields["agency_id"], fields["source_record_id"])
        held = self.records.get(key)
        if held is not None:
            if fields["source_version"] < held.source_version:
                return []  # stale: a newer version is already resolved
            record = SourceRecord(fields, min(held.first_event_time, fields["event_time"]))
            if record == held:
                return []  # a replay of what is already resolved
            key = self._features[key].key  # the key object already held, not a second copy
        else:
            record = SourceRecord(fields, fields["event_time"])
        seeds = {key}
        self.records[key] = record
        self._edge_index.joined.clear()
        # the record's edges before the change (reindex replaces the dict, never alters it)
        before = self._edges.get(key, {})
        if held is not None:
            seeds |= self._edge_index.reindex(key, fields)
        else:
            seeds |= self._edge_index.index(key, fields)
        if not decisions:
            return self._recluster(seeds, changed={key}, decisions=False)
        changes = self._recluster(seeds, changed={key})
        # before the changes: a verdict names what was done
        return self._decisions_for(key, before) + self._joined_decisions() + changes

    def delete(
        self, agency_id: str, source_record_id: str, *, decisions: bool = True
    ) -> list[Change]:
        """Remove one source record; its golden person is rebuilt, merged away or removed.
        ``decisions`` as for ``upsert``."""
        key = source_key(agency_id, source_record_id)
        if key not in self.records:
            return []
        self._edge_index.joined.clear()
        seeds = self._edge_index.unindex(key) | {key}
        record = self.records.pop(key)
        changes = self._recluster(seeds, changed={key}, decisions=decisions)
        if decisions:
            changes[:0] = self._joined_decisions()
        changes.append(SourceMapped(agency_id, source_record_id, record.source_version, None))
        return changes

    def decide(self, decision: Mapping[str, Any], *, decisions: bool = True) -> list[Change]:
        """Take a steward's decision in (a ``StewardDecision`` record): when it changes what
        binds its pair, the records involved are clustered again and what changed is returned,
        with (``decisions``) a match decision for the pair naming the steward's rule."""
        applied = self.stewardship.apply(decision)
        if applied is None:
            return []
        seeds = {self._features[key].key for key in applied.pair if key in self.records}
        changes = self._recluster(seeds, changed=set(), decisions=decisions) if seeds else []
        if decisions and len(seeds) == 2:
            # the steward's verdict on the pair, instead of the veto the re-clustering made
            changes = [c for c in changes if not isinstance(c, MatchDecision) or {
                source_key(c.left_agency_id, c.left_source_record_id),
                source_key(c.right_agency_id, c.right_source_record_id)} != set(applied.pair)]
            return self._decisions_for(applied.left, only=applied.right) + changes
        return changes

    def person_of(self, agency_id: str, source_record_id: str) -> str | None:
        return self._person_of.get(source_key(agency_id, source_record_id))

    def clusters(self) -> dict[str, list[SourceKey]]:
        """person_id -> sorted source keys, for every live golden person."""
        return {person: sorted(members) for person, members in self._members.items()}

    def members(self, person_id: str) -> list[SourceRecord]:
        """The records of a live golden person, by source key (empty for any other id)."""
        return [self.records[key] for key in sorted(self._members.get(person_id, ()))]

    def golden(self, person_id: str) -> dict[str, Any] | None:
        members = self._members.get(person_id)
        if not members:
            return None
        value = golden_person(person_id, [self.records[k] for k in members], self.trust)
        value["golden_version"] = self.published[person_id]["version"]
        return value

    def explain(self, left: SourceKey, right: SourceKey) -> PairScore:
        """Why two held records match or not: the score and each field's weight."""
        return score_pair(self.model, self._features[left], self._features[right])

    def candidate_keys(self, key: SourceKey) -> set[SourceKey]:
        """Records that share a usable (within-cap) blocking key with this one."""
        return self._edge_index.candidate_keys(key)

    @property
    def pairs_scored(self) -> int:
        return self._edge_index.pairs_scored

    @property
    def block_size_cap(self) -> int:
        return self._blocks.block_size_cap

    def derivation(self) -> dict[str, Any]:
        """What the edges and clusters depend on besides the records: saved ones are valid
        for a resolver whose derivation is equal."""
        return {
            "model": fingerprint(self.model),
            "block_size_cap": self.block_size_cap,
            "guard": [self.guard.mean_threshold, self.guard.floor],
        }

    def edge_items(self) -> Iterator[tuple[SourceKey, list[tuple[SourceKey, float]]]]:
        """Each record's edges to records sorting after it (so each pair once), lazily."""
        return self._edge_index.items()

    def cluster_items(self) -> Iterator[tuple[str, tuple[SourceKey, ...]]]:
        """person_id -> its sorted members, for every live golden person, lazily."""
        return iter(self._members.items())

    def to_state(self) -> dict[str, Any]:
        """The persistent state as JSON-safe data (blocks and features are rebuilt from it on
        load; edges and clusters are taken as they are when ``derived`` matches)."""
        return {
            "format": STATE_FORMAT,
            "decisions": self.stewardship.to_state(),
            "records": {key: record.to_dict() for key, record in self.records.items()},
            "published": {person: dict(entry) for person, entry in self.published.items()},
            "derived": self.derivation(),
            "edges": dict(self.edge_items()),
            "clusters": dict(self.cluster_items()),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], **options: Any) -> Resolver:
        """The resolver a state describes. ``records``, ``edges`` and ``clusters`` are read
        once each, in that order, through ``items()`` (a snapshot streams them). The edges
        and clusters are used as saved when ``derived`` equals this resolver's derivation
        (same model, block cap and guard); otherwise every pair is scored again."""
        if state.get("format") not in READABLE_STATE_FORMATS:
            raise ValueError(
                f"resolver state format {state.get('format')!r} is not one of "
                f"{READABLE_STATE_FORMATS}; rebuild the state by replaying the ingest topic "
                "into a fresh resolver"
            )
        resolver = cls(**options)
        resolver.published = {p: dict(entry) for p, entry in state["published"].items()}
        for decision in state.get("decisions", ()):
            resolver.stewardship.apply(decision)
        reuse = state.get("derived") == resolver.derivation() and "edges" in state
        for key, record in state["records"].items():
            resolver.records[key] = SourceRecord(record, record["first_event_time"])
            if reuse:
                resolver._edge_index.block(key, record)
            else:
                resolver._edge_index.index(key, record)
        edges: Mapping[str, Any] = state.get("edges", {})
        clusters: Mapping[str, Any] = state.get("clusters", {})
        if reuse:
            resolver._restore_derived(edges, clusters)
        else:
            # Saved with another model, cap or guard: not valid here (read past them all the
            # same: a snapshot streams its sections in order).
            for _ in edges.items():
                pass
            for _ in clusters.items():
                pass
            # Published versions and hashes are already in state: re-derive clusters silently.
            resolver._recluster(set(resolver.records), changed=set(), decisions=False)
        return resolver

    def _restore_derived(self, edges: Mapping[str, Any], clusters: Mapping[str, Any]) -> None:
        features = self._features
        try:
            self._edge_index.restore(edges)
            for person, member_keys in clusters.items():
                members = tuple(features[key].key for key in member_keys)
                self._members[person] = members
                for key in members:
                    self._person_of[key] = person
        except KeyError as error:
            raise ValueError(
                f"resolver state names record {error} in its edges or clusters but does not "
                "hold it; the state is inconsistent: rebuild it by replaying the ingest topic"
            ) from None
        if len(self._person_of) != len(self.records):
            raise ValueError(
                f"resolver state places {len(self._person_of)} of its {len(self.records)} "
                "records in a cluster; the state is inconsistent: rebuild it by replaying the "
                "ingest topic"
            )

    # ----------------------------------------------------------------- clustering
    def _component(self, seeds: set[SourceKey]) -> set[SourceKey]:
        """Live records reachable from the seeds through matching pairs, closed under the
        previous clusters of the records found (a cluster is never cut by the frontier)."""
        threshold = self.model.match_threshold
        found: set[SourceKey] = set()
        frontier = [key for key in seeds if key in self.records]
        for key in seeds:
            old = self._person_of.get(key)
            if old is not None:
                frontier.extend(self._members.get(old, ()))
        while frontier:
            key = frontier.pop()
            if key in found or key not in self.records:
                continue
            found.add(key)
            frontier.extend(o for o, s in self._edges.get(key, {}).items() if s >= threshold)
            frontier.extend(self.stewardship.must.get(key, ()))
            old = self._person_of.get(key)
            if old is not None:
                frontier.extend(self._members.get(old, ()))
        return found

    def _recluster(
        self, seeds: set[SourceKey], changed: set[SourceKey], *, decisions: bool = True
    ) -> list[Change]:
        nodes = self._component(seeds)
        threshold = self.model.match_threshold
        old_person = {key: self._person_of[key] for key in nodes | seeds if key in self._person_of}
        old_ids = set(old_person.values())
        old_members = {person: self._members.get(person, ()) for person in old_ids}
        edges = [
            (score, left, right)
            for left in nodes
            for right, score in self._edges.get(left, {}).items()
            if left < right and score >= threshold
        ]
        clusters, vetoed = cluster_component(
            nodes, edges, self._edge_index.pair_score, self.guard,
            self.stewardship.must_pairs(nodes), self.stewardship.cannot,
        )

        for key in nodes | seeds:
            self._person_of.pop(key, None)
        for person in old_ids:
            self._members.pop(person, None)

        upserts: list[Change] = []
        new_ids: set[str] = set()
        for cluster in clusters:
            members = tuple(cluster)  # sorted by cluster_component
            records = [self.records[key] for key in members]
            person = golden_id(records)
            new_ids.add(person)
            self._members[person] = members
            for key in members:
                self._person_of[key] = person
            entry = self.published.get(person)
            if (
                entry is not None and entry["status"] == "live"
                and old_members.get(person) == members and changed.isdisjoint(members)
            ):
                # Same id, same members, none of them changed: the golden record is the one
                # already published (survivorship is a function of the records alone).
                continue
            value = golden_person(person, records, self.trust)
            digest = _content_hash(value)
            if entry is None or entry["hash"] != digest or entry["status"] != "live":
                version = (entry["version"] if entry else 0) + 1
                self.published[person] = {"version": version, "hash": digest, "status": "live"}
                upserts.append(GoldenPersonUpserted(person, version, {
                    **value, "golden_version": version,
                }))

        retired: list[Change] = []
        for person in sorted(old_ids - new_ids):
            survivor = self._successor(person, old_members[person])
            version = self.published[person]["version"] + 1
            if survivor is None:
                self.published[person] = {"version": version, "hash": "", "status": "removed"}
                retired.append(GoldenPersonRemoved(person))
            else:
                self.published[person] = {
                    "version": version, "hash": "", "status": "merged", "merged_into": survivor,
                }
                retired.append(GoldenPersonMerged(person, version, survivor))

        mappings: list[Change] = []
        for key in sorted(nodes):
            person = self._person_of[key]
            if key in changed or old_person.get(key) != person:
                record = self.records[key]
                mappings.append(SourceMapped(
                    record.agency_id, record.source_record_id, record.source_version, person,
                ))
        if not decisions:
            return upserts + retired + mappings
        return self._veto_decisions(vetoed, seeds) + upserts + retired + mappings

    def _successor(self, person: str, old_members: Iterable[SourceKey]) -> str | None:
        """Where a retired golden id now lives: the cluster holding most of its old members."""
        counts: dict[str, int] = {}
        for key in old_members:
            new_person = self._person_of.get(key)
            if new_person is not None:
                counts[new_person] = counts.get(new_person, 0) + 1
        if not counts:
            return None
        return min(counts, key=lambda p: (-counts[p], p))

    # ----------------------------------------------------------------- match decisions

    def _decision(self, left: SourceKey, right: SourceKey, pair: PairScore,
                  decision: str, rule: str) -> MatchDecision:
        a, b = self.records[left], self.records[right]
        return MatchDecision(
            a.agency_id, a.source_record_id, b.agency_id, b.source_record_id,
            pair.score, pair.features, rule, decision, self.clock(),
        )

    def _decisions_for(
        self, key: SourceKey, before: Mapping[SourceKey, float] | None = None,
        only: SourceKey | None = None,
    ) -> list[Change]:
        """Decisions about the record's pairs at review level and above whose score is not the
        one they had ``before`` the change (an unchanged pair's last decision stands), and
        every pair a steward binds (the steward's verdict); or about the one pair ``only``."""
        decisions: list[Change] = []
        pairs = sorted(self._edges.get(key, {}).items()) if only is None else [(only, None)]
        for other, score in pairs:
            steward = self.stewardship.binding(key, other)
            if steward is None and before is not None and before.get(other) == score:
                continue
            pair = self.explain(key, other)
            if steward is None:
                verdict, rule = self.model.decision(pair.score), pair.rule
            else:
                verdict, rule = steward.verdict(self._person_of[key] == self._person_of[other])
            decisions.append(self._decision(key, other, pair, verdict, rule))
        return decisions

    def _joined_decisions(self) -> list[Change]:
        """The decisions about the edges the change made between two other records."""
        return [
            change for left, right in self._edge_index.joined
            if right in self._edges.get(left, ())
            for change in self._decisions_for(left, only=right)
        ]

    def _veto_decisions(self, vetoed: list[Vetoed], seeds: set[SourceKey]) -> list[Change]:
        return [
            self._decision(v.left, v.right, self.explain(v.left, v.right), "NON_MATCH", v.reason)
            for v in vetoed
            if v.left in seeds or v.right in seeds
        ]
