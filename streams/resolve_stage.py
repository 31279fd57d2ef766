"""The resolve stage around the pure ``Resolver``: person and link events in, outputs out.

It runs on one partition (``<prefix>.internal.resolve``, written by ingest), because
resolution needs every person record in one place. Each input message has an offset in that
partition, and that offset is the ``golden_version`` of everything its processing emits:

- offsets only grow, so a golden record's version grows with every change, across restarts
  and across workers taking the partition over (what the sink's "only a higher golden_version
  replaces a row" rule needs);
- processing the same message again (at-least-once after a crash) emits the same versions,
  so a repeated output is recognised as one the sink already holds.

After a (re)start the stage is rebuilt from the same topic: every message before the first
offset it is handed is loaded silently (``load``), and the messages from that offset on are
processed again (``apply``). The resolver is order-independent, so the rebuilt clusters and
golden ids are those of the run that died; compaction keeps the latest state of every source
record, so the rebuild needs nothing else. To spare a restart most of that replay, the worker
also keeps snapshots of the stage (``streams.snapshot``: the resolver's state plus the links,
``link_states`` / ``restore_link``) and replays only the messages after the newest usable one.

A model change (``tipsync stream --model``, docs/STREAMS.md "Rolling out a scoring model")
is a message of that partition too: a *model-change marker* (key ``model-change:<fingerprint>``,
value the model document) that the worker appends when its configured model differs from the
one the published view was made with. At the marker's offset the stage re-resolves every
record held under the new model (``apply_model_change``) and emits exactly the differences,
all with the marker's offset as golden_version: above every version published before it,
below every version of the inputs after it. While rebuilding, a marker switches the model
silently (``load_model_change``), so a rebuilt stage resolves with the model in force at its
offset.

A steward's decision (``tipsync review decide``, ``schemas.stewardship``) is a message of
that partition too: the stream app forwards each one from ``tip.stewardship.decisions`` with
the key ``steward:<pair key>`` and its Avro bytes unchanged (``streams.stewardship``). At its
offset the stage hands it to the resolver (``apply_decision``: the records involved are
clustered again, the changes published at that offset like any input's); while rebuilding it
is loaded silently (``load_decision``). So decisions are ordered with the records, replayed by
every rebuild and carried by snapshots (they are part of the resolver's state), and compaction
keeps the latest decision of every pair.

Links are reconciled here too: a link's ends become golden ids (a person end through the
resolver's mapping, other ends by ``entity_golden_id``), and a link is emitted again when a
person it points at moves to another golden id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from schemas.agencies import TRUST_MAX, Agency
from streams.ingest import AgencyEvent, entity_golden_id, source_of, split_held_key
from streams.resolve import (
    GoldenPersonMerged,
    GoldenPersonRemoved,
    GoldenPersonUpserted,
    MatchDecision,
    Resolver,
    SourceMapped,
    TrustRanks,
)
from streams.resolve.model_file import (
    DEFAULT_MODEL_FILE,
    ModelFile,
    fingerprint,
    read_model_file,
)
from streams.resolve.records import source_key
from streams.resolve.survivorship import person_golden_id

PERSON: Final = "person"
LINK: Final = "link"
MAPPING: Final = "mapping"
MATCH_DECISION: Final = "match_decision"
# Key of a model-change marker on the resolve topic: one key per model, so compaction keeps
# the latest marker of every model ever used (never a record's key: those start with
# '<entity>:').
MODEL_CHANGE_PREFIX: Final = "model-change:"


# Key of a steward's decision forwarded to the resolve topic: one key per pair, so compaction
# keeps the latest decision of every pair.
STEWARD_PREFIX: Final = "steward:"


def steward_key(pair_key: str) -> str:
    return f"{STEWARD_PREFIX}{pair_key}"


def is_steward_decision(key: bytes | None) -> bool:
    return key is not None and key.startswith(STEWARD_PREFIX.encode())


def model_change_key(model_file: ModelFile) -> str:
    return f"{MODEL_CHANGE_PREFIX}{model_file.fingerprint}"


def is_model_change(key: bytes | None) -> bool:
    return key is not None and key.startswith(MODEL_CHANGE_PREFIX.encode())

# deploy/agencies.yaml names field groups as FIELD_GROUPS does; survivorship names the name
# group in the singular.
_SURVIVORSHIP_GROUP = {"names": "name"}


def trust_ranks(agencies: Mapping[str, Agency]) -> TrustRanks:
    """Survivorship's ranks (1 = most trusted) from the agency registry's (10 = most trusted)."""
    return {
        agency_id: {
            _SURVIVORSHIP_GROUP.get(group, group): TRUST_MAX + 1 - rank
            for group, rank in agency.trust.items()
        }
        for agency_id, agency in agencies.items()
    }


def load_model(path: str | None) -> ModelFile:
    """The model a worker resolves with: a model file (``tipsync model fit``) or, without
    one, the reasoned default weights. A bad file raises ``ModelFileError``."""
    return read_model_file(Path(path)) if path else DEFAULT_MODEL_FILE


@dataclass(frozen=True)
class Output:
    """One message to publish: ``kind`` picks the topic, ``value`` None is a tombstone."""

    kind: str  # person | link | match_decision | mapping
    key: str
    value: dict[str, Any] | None


@dataclass
class _Link:
    event: AgencyEvent
    from_key: str  # '<agency_id>:<record id>' of each end, in the link's own agency
    to_key: str


def person_fields(event: AgencyEvent) -> dict[str, Any]:
    """What the resolver reads: the payload plus the envelope's ids, version, label and
    data-protection terms."""
    return {
        **event.record["payload"],
        "agency_id": event.agency_id,
        "source_record_id": event.source_record_id,
        "source_version": event.source_version,
        "event_time": event.event_time,
        "classification": event.record.get("classification"),
        "quality_issues": event.record.get("quality_issues") or [],
        "retention_until": event.record.get("retention_until"),
        "legal_basis": event.record.get("legal_basis"),
        "consent_ref": event.record.get("consent_ref"),
    }


class ResolveStage:
    """The resolver plus the links, fed one accepted event at a time (see module docstring)."""

    def __init__(self, resolver_factory: Callable[[], Resolver]) -> None:
        self.resolver = resolver_factory()
        self.links: dict[str, _Link] = {}  # link source key -> link
        # records a rebuild held (from its snapshot) and forgot at an erasure's tombstone: the
        # snapshot it started from holds them, so the handler writes a new one at once
        self.erased_while_loading = 0
        self.links_of_person: dict[str, set[str]] = {}  # person source key -> link keys
        self.emitted_ends: dict[str, tuple[str, str]] = {}  # link key -> (from_id, to_id)

    # ------------------------------------------------------------------ feeding

    def load(self, event: AgencyEvent) -> None:
        """Take an event in without emitting anything (rebuild after a restart). The
        resolver builds no match decisions: nothing would publish them."""
        if event.entity == PERSON:
            if event.op == "DELETE":
                self.resolver.delete(event.agency_id, event.source_record_id, decisions=False)
            else:
                self.resolver.upsert(person_fields(event), decisions=False)
        elif event.entity == LINK:
            if event.op == "DELETE":
                self._forget_link(event.source_key)
            else:
                self._hold_link(event)

    def load_erasure(self, held_key: str) -> None:
        """A tombstone of ``tipsync erase`` met while rebuilding: the record is gone, whatever
        the snapshot the rebuild started from holds (its DELETE, before the tombstone, may
        have been compacted away; the tombstone is kept, ``schemas.topics.resolve_config``)."""
        entity, agency_id, record_id = split_held_key(held_key)
        key = source_key(agency_id, record_id)
        if entity == PERSON and key in self.resolver.records:
            self.resolver.delete(agency_id, record_id, decisions=False)
            self.erased_while_loading += 1
        elif entity == LINK and key in self.links:
            self._forget_link(key)
            self.erased_while_loading += 1

    @property
    def model_fingerprint(self) -> str:
        return fingerprint(self.resolver.model)

    def _remodelled(self, model_file: ModelFile) -> Resolver:
        """A resolver holding the same records and published state, under another model;
        its clusters are derived silently."""
        old = self.resolver
        return Resolver.from_state(
            old.to_state(), trust=old.trust, model=model_file.model,
            block_size_cap=old.block_size_cap, clock=old.clock,
        )

    def load_model_change(self, model_file: ModelFile) -> None:
        """A model-change marker met while rebuilding: switch models, emitting nothing."""
        if model_file.fingerprint != self.model_fingerprint:
            self.resolver = self._remodelled(model_file)

    def apply_model_change(self, model_file: ModelFile, golden_version: int) -> list[Output]:
        """Re-resolve every record held under ``model_file``; the outputs are the differences
        from what was published under the model before (nothing when it is the same model):

        - every golden person whose members or content changed, upserted;
        - every golden id that no longer exists, merged into the cluster that holds most of
          its old members (each record is still held, so there always is one);
        - every source record that moved to another golden id, mapped again;
        - every link whose person end moved, emitted again.

        Match decisions are not re-published: each records the score of its time.
        """
        if model_file.fingerprint == self.model_fingerprint:
            return []
        old = self.resolver
        new = self._remodelled(model_file)
        old_clusters, new_clusters = old.clusters(), new.clusters()
        outputs: list[Output] = []
        for person, members in sorted(new_clusters.items()):
            value = new.golden(person)
            assert value is not None
            if old_clusters.get(person) != members or _content(old.golden(person)) != _content(
                value
            ):
                outputs.append(Output(PERSON, person, {**value, "golden_version": golden_version}))
        for person in sorted(old_clusters.keys() - new_clusters.keys()):
            counts: dict[str, int] = {}
            for key in old_clusters[person]:
                survivor = new.person_of(*key.split(":", 1))
                if survivor is not None:
                    counts[survivor] = counts.get(survivor, 0) + 1
            survivor = min(counts, key=lambda p: (-counts[p], p))
            entry = new.published[person]
            # The resolver's own bookkeeping, as if the merge had happened record by record: an
            # id that comes back later is then published again, never taken as unchanged.
            new.published[person] = {"version": entry["version"] + 1, "hash": "",
                                     "status": "merged", "merged_into": survivor}
            retired = old.golden(person) or {}
            change = GoldenPersonMerged(person, entry["version"] + 1, survivor)
            outputs.append(Output(PERSON, person, _merged_value(
                change, golden_version, retired.get("last_updated") or _EPOCH,
            )))
        moved: list[str] = []
        for key in sorted(new.records):
            agency_id, record_id = key.split(":", 1)
            person_id = new.person_of(agency_id, record_id)
            if person_id != old.person_of(agency_id, record_id):
                outputs.append(Output(MAPPING, key, {
                    "person_id": person_id,
                    "source_version": new.records[key]["source_version"],
                    "golden_version": golden_version,
                }))
                moved.append(key)
        self.resolver = new
        outputs.extend(self._moved_links(moved, golden_version))
        return outputs

    def load_decision(self, decision: Mapping[str, Any]) -> None:
        """A steward's decision met while rebuilding: held, emitting nothing."""
        self.resolver.decide(decision, decisions=False)

    def apply_decision(self, decision: Mapping[str, Any], golden_version: int) -> list[Output]:
        """A steward's decision (a decoded ``StewardDecision``): the records it binds are
        clustered again; the outputs carry ``golden_version`` (its offset)."""
        changes = self.resolver.decide(decision)
        return self._person_outputs(decision["decided_at"], changes, golden_version)

    def finish_loading(self) -> None:
        """After ``load``: note the ends links have now, so only later moves re-emit a link."""
        for link_key, link in self.links.items():
            self.emitted_ends[link_key] = self._ends(link)

    def apply(self, event: AgencyEvent, golden_version: int) -> list[Output]:
        """Process an event; every output carries ``golden_version`` (the input's offset)."""
        if event.entity == PERSON:
            return self._person_outputs(event.event_time, self._resolve(event), golden_version)
        if event.entity == LINK:
            if event.op == "DELETE":
                self._forget_link(event.source_key)
                link_id = entity_golden_id(LINK, event.agency_id, event.source_record_id)
                return [Output(LINK, link_id, None)]
            self._hold_link(event)
            return [self._link_output(event.source_key, golden_version)]
        raise ValueError(
            f"the resolve stage got a {event.entity} event; only person and link events go "
            "through it (ingest routes the others straight to their reconciled topics)"
        )

    # ------------------------------------------------------------------ people

    def _resolve(self, event: AgencyEvent) -> list[Any]:
        if event.op == "DELETE":
            return self.resolver.delete(event.agency_id, event.source_record_id)
        return self.resolver.upsert(person_fields(event))

    def _person_outputs(
        self, moment: datetime, changes: list[Any], golden_version: int
    ) -> list[Output]:
        outputs: list[Output] = []
        moved: list[str] = []
        for change in changes:
            if isinstance(change, GoldenPersonUpserted):
                value = {**change.value, "golden_version": golden_version}
                outputs.append(Output(PERSON, change.person_id, value))
            elif isinstance(change, GoldenPersonMerged):
                outputs.append(Output(PERSON, change.person_id, _merged_value(
                    change, golden_version, moment,
                )))
            elif isinstance(change, GoldenPersonRemoved):
                outputs.append(Output(PERSON, change.person_id, None))
            elif isinstance(change, SourceMapped):
                key = source_key(change.agency_id, change.source_record_id)
                outputs.append(
                    Output(
                        MAPPING,
                        key,
                        {
                            "person_id": change.person_id,
                            "source_version": change.source_version,
                            "golden_version": golden_version,
                        },
                    )
                )
                moved.append(key)
            elif isinstance(change, MatchDecision):
                left = source_key(change.left_agency_id, change.left_source_record_id)
                right = source_key(change.right_agency_id, change.right_source_record_id)
                outputs.append(Output(MATCH_DECISION, f"{left}|{right}", change.value))
        outputs.extend(self._moved_links(moved, golden_version))
        return outputs

    def _moved_links(self, moved: list[str], golden_version: int) -> list[Output]:
        """Links of the moved person records whose golden ends changed, emitted again."""
        outputs: list[Output] = []
        for person_key in moved:
            for link_key in sorted(self.links_of_person.get(person_key, ())):
                if self._ends(self.links[link_key]) != self.emitted_ends.get(link_key):
                    outputs.append(self._link_output(link_key, golden_version))
        return outputs

    # ------------------------------------------------------------------ snapshots

    def link_states(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every link held, as JSON-safe data (what a snapshot keeps; ``restore_link`` reads
        it back). The people are the resolver's own state (``Resolver.to_state``)."""
        for link_key, link in self.links.items():
            event = link.event
            yield link_key, {
                "entity": event.entity, "agency_id": event.agency_id,
                "source_record_id": event.source_record_id, "event_id": event.event_id,
                "op": event.op, "source_version": event.source_version,
                "event_time": _json_safe(event.event_time), "record": _json_safe(event.record),
            }

    def restore_link(self, state: Mapping[str, Any]) -> None:
        """Hold a link again from ``link_states`` data (loading a snapshot)."""
        self._hold_link(AgencyEvent(
            entity=state["entity"], agency_id=state["agency_id"],
            source_record_id=state["source_record_id"], event_id=state["event_id"],
            op=state["op"], source_version=int(state["source_version"]),
            event_time=_from_json_safe(state["event_time"]),
            record=_from_json_safe(state["record"]),
        ))

    # ------------------------------------------------------------------ links

    def _hold_link(self, event: AgencyEvent) -> None:
        self._forget_link(event.source_key)
        payload = event.record["payload"]
        link = _Link(
            event,
            source_key(event.agency_id, payload["from_record_id"]),
            source_key(event.agency_id, payload["to_record_id"]),
        )
        self.links[event.source_key] = link
        for entity, key in ((payload["from_entity"], link.from_key),
                            (payload["to_entity"], link.to_key)):
            if entity == "PERSON":
                self.links_of_person.setdefault(key, set()).add(event.source_key)

    def _forget_link(self, link_key: str) -> None:
        link = self.links.pop(link_key, None)
        self.emitted_ends.pop(link_key, None)
        if link is None:
            return
        for key in (link.from_key, link.to_key):
            holders = self.links_of_person.get(key)
            if holders is not None:
                holders.discard(link_key)
                if not holders:
                    del self.links_of_person[key]

    def _end_id(self, entity: str, key: str) -> str:
        agency_id, _, record_id = key.partition(":")
        if entity == "PERSON":
            # A person not (yet) known gets the id it will have as a cluster of its own.
            return self.resolver.person_of(agency_id, record_id) or person_golden_id(key)
        return entity_golden_id(entity.lower(), agency_id, record_id)

    def _ends(self, link: _Link) -> tuple[str, str]:
        payload = link.event.record["payload"]
        return (
            self._end_id(payload["from_entity"], link.from_key),
            self._end_id(payload["to_entity"], link.to_key),
        )

    def _link_output(self, link_key: str, golden_version: int) -> Output:
        link = self.links[link_key]
        event = link.event
        payload = event.record["payload"]
        from_id, to_id = self._ends(link)
        self.emitted_ends[link_key] = (from_id, to_id)
        link_id = entity_golden_id(LINK, event.agency_id, event.source_record_id)
        value = {
            "link_id": link_id,
            "golden_version": golden_version,
            "classification": event.record.get("classification") or "VICTIM_PROTECTED",
            "sources": [source_of(event)],
            "from_entity": payload["from_entity"],
            "from_id": from_id,
            "to_entity": payload["to_entity"],
            "to_id": to_id,
            "link_role": payload.get("link_role") or "OTHER",
            "valid_from": payload.get("valid_from"),
            "valid_to": payload.get("valid_to"),
        }
        return Output(LINK, link_id, value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _content(golden: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A golden record without its version: what a reader of the view would see change."""
    return None if golden is None else {k: v for k, v in golden.items() if k != "golden_version"}


def _merged_value(
    change: GoldenPersonMerged, golden_version: int, moment: datetime
) -> dict[str, Any]:
    value = {**change.value, "golden_version": golden_version}
    # GoldenPerson requires these even on a merged-away id whose other fields are empty.
    value["classification"] = value.get("classification") or "VICTIM_PROTECTED"
    value["first_seen"] = value.get("first_seen") or moment
    value["last_updated"] = value.get("last_updated") or moment
    return value


# Dates and times of a decoded event (Avro date and timestamp-millis) kept as tagged JSON in a
# snapshot, so a link read back is the event it was. A tag cannot clash with a field: Avro
# field names never start with '$'.
_DATETIME_TAG: Final = "$datetime"
_DATE_TAG: Final = "$date"


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_DATETIME_TAG: value.isoformat()}
    if isinstance(value, date):
        return {_DATE_TAG: value.isoformat()}
    if isinstance(value, Mapping):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def _from_json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _DATETIME_TAG in value:
            return datetime.fromisoformat(value[_DATETIME_TAG])
        if len(value) == 1 and _DATE_TAG in value:
            return date.fromisoformat(value[_DATE_TAG])
        return {key: _from_json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_json_safe(item) for item in value]
    return value
