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
record, so the rebuild needs nothing else.

Links are reconciled here too: a link's ends become golden ids (a person end through the
resolver's mapping, other ends by ``entity_golden_id``), and a link is emitted again when a
person it points at moves to another golden id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from schemas.agencies import TRUST_MAX, Agency
from streams.ingest import AgencyEvent, entity_golden_id, source_of
from streams.resolve import (
    GoldenPersonMerged,
    GoldenPersonRemoved,
    GoldenPersonUpserted,
    MatchDecision,
    Resolver,
    SourceMapped,
    TrustRanks,
)
from streams.resolve.records import source_key
from streams.resolve.survivorship import person_golden_id

PERSON: Final = "person"
LINK: Final = "link"
MAPPING: Final = "mapping"
MATCH_DECISION: Final = "match_decision"

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
    """What the resolver reads: the payload plus the envelope's ids, version and label."""
    return {
        **event.record["payload"],
        "agency_id": event.agency_id,
        "source_record_id": event.source_record_id,
        "source_version": event.source_version,
        "event_time": event.event_time,
        "classification": event.record.get("classification"),
    }


class ResolveStage:
    """The resolver plus the links, fed one accepted event at a time (see module docstring)."""

    def __init__(self, resolver_factory: Callable[[], Resolver]) -> None:
        self.resolver = resolver_factory()
        self.links: dict[str, _Link] = {}  # link source key -> link
        self.links_of_person: dict[str, set[str]] = {}  # person source key -> link keys
        self.emitted_ends: dict[str, tuple[str, str]] = {}  # link key -> (from_id, to_id)

    # ------------------------------------------------------------------ feeding

    def load(self, event: AgencyEvent) -> None:
        """Take an event in without emitting anything (rebuild after a restart)."""
        if event.entity == PERSON:
            self._resolve(event)
        elif event.entity == LINK:
            if event.op == "DELETE":
                self._forget_link(event.source_key)
            else:
                self._hold_link(event)

    def finish_loading(self) -> None:
        """After ``load``: note the ends links have now, so only later moves re-emit a link."""
        for link_key, link in self.links.items():
            self.emitted_ends[link_key] = self._ends(link)

    def apply(self, event: AgencyEvent, golden_version: int) -> list[Output]:
        """Process an event; every output carries ``golden_version`` (the input's offset)."""
        if event.entity == PERSON:
            return self._person_outputs(event, self._resolve(event), golden_version)
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
        self, event: AgencyEvent, changes: list[Any], golden_version: int
    ) -> list[Output]:
        outputs: list[Output] = []
        moved: list[str] = []
        for change in changes:
            if isinstance(change, GoldenPersonUpserted):
                value = {**change.value, "golden_version": golden_version}
                outputs.append(Output(PERSON, change.person_id, value))
            elif isinstance(change, GoldenPersonMerged):
                outputs.append(
                    Output(PERSON, change.person_id, _merged_value(change, golden_version, event))
                )
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
        for person_key in moved:
            for link_key in sorted(self.links_of_person.get(person_key, ())):
                if self._ends(self.links[link_key]) != self.emitted_ends.get(link_key):
                    outputs.append(self._link_output(link_key, golden_version))
        return outputs

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


def _merged_value(
    change: GoldenPersonMerged, golden_version: int, event: AgencyEvent
) -> dict[str, Any]:
    value = {**change.value, "golden_version": golden_version}
    # GoldenPerson requires these even on a merged-away id whose other fields are empty.
    moment: datetime = event.event_time
    value["classification"] = value.get("classification") or "VICTIM_PROTECTED"
    value["first_seen"] = value.get("first_seen") or moment
    value["last_updated"] = value.get("last_updated") or moment
    return value
