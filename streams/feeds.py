"""The agencies' feeds: what resolve's outputs mean to each agency, within its clearance.

Every output resolve publishes (``streams.outputs.ResolvePublisher``) is also handed to
``AgencyFeeds``, which turns it into ``FeedMessage`` records (``schemas.outbound``) on
``tip.outbound.<agency_id>`` for the registered agencies it concerns:

- a golden person upserted -> ``GOLDEN_CHANGED`` to every agency holding one of its records;
- a source record mapped to a golden person (it arrived, changed, or moved) -> an alert
  ``RECORD_REPORTED`` to every *other* agency holding a record of that person;
- a link upserted -> an alert ``LINK_REPORTED`` to every agency, other than the link's,
  holding a record of a person at one of its ends.

What a message shows is decided per recipient from the records it is cleared for
(``within_clearance``): the person is the golden person that survivorship makes from those
records alone, other holders are named only when their record is within the clearance, and a
reporting record or link above it is announced without its agency, id or role. The stage's
resolver is read when the output is published, so it holds the state the output was made from.

The feed is made here, under the stream principal, because only the stream app holds the
mapping from source records to golden people in memory (``ResolveStage``); a separate
consumer would need its own copy of every person's records to apply the clearance rules.
Messages carry the output's ``golden_version`` and a ``message_id`` derived from it, so a
message published again after a crash (at-least-once) is the same message and the agency's
side stores it once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from schemas.agencies import Agency
from schemas.enums import FeedKind
from schemas.models import PersonPayload
from schemas.outbound import CLEARANCE_ORDER, feed_message_id, within_clearance
from schemas.topics import TopicNames
from streams.outputs import Send, Serialize
from streams.resolve import Resolver
from streams.resolve.records import SourceRecord
from streams.resolve.survivorship import golden_person
from streams.resolve_stage import LINK, MAPPING, PERSON, Output

PERSON_FIELDS = tuple(PersonPayload.model_fields)


class _PersonViews:
    """One golden person's records and the view of it at each clearance, made once."""

    def __init__(self, person_id: str, resolver: Resolver) -> None:
        self.person_id = person_id
        self.records: list[SourceRecord] = resolver.members(person_id)
        self.trust = resolver.trust
        self._views: dict[str, tuple[dict[str, Any] | None, str]] = {}
        # the view of a clearance that sees every record: the golden person resolve has just
        # published, when its output came first (``seed``)
        self._whole: tuple[dict[str, Any] | None, str] | None = None

    def seed(self, golden: Mapping[str, Any]) -> None:
        """The golden person resolve published for these records (its PERSON output): what
        survivorship makes of all of them, so a clearance that sees them all is shown it
        without making it again (survivorship is a function of the records alone, and both
        take them in source-key order)."""
        self._whole = ({field: golden.get(field) for field in PERSON_FIELDS},
                       str(golden["classification"]))

    def holders(self) -> set[str]:
        return {record.agency_id for record in self.records}

    def view(self, clearance: str) -> tuple[dict[str, Any] | None, str]:
        """The person made from the records within ``clearance`` (None when there is none),
        and the most protective label among those records."""
        found = self._views.get(clearance)
        if found is None:
            visible = [r for r in self.records if within_clearance(r.classification, clearance)]
            if not visible:
                found = (None, "OFFICIAL")
            elif self._whole is not None and len(visible) == len(self.records):
                found = self._whole
            else:
                golden = golden_person(self.person_id, visible, self.trust)
                found = ({field: golden.get(field) for field in PERSON_FIELDS},
                         str(golden["classification"]))
            self._views[clearance] = found
        return found

    def message(self, recipient: Agency, kind: str, subject: str, golden_version: int,
                produced_at: datetime) -> dict[str, Any]:
        person, label = self.view(recipient.clearance)
        return {
            "person_id": self.person_id,
            "message_id": feed_message_id(recipient.id, kind, subject, golden_version),
            "agency_id": recipient.id,
            "kind": kind,
            "golden_version": golden_version,
            "produced_at": produced_at,
            "your_records": [r.source_record_id for r in self.records
                             if r.agency_id == recipient.id],
            "classification": label,
            "person": person,
            "holders": [
                {"agency_id": r.agency_id, "source_record_id": r.source_record_id}
                for r in self.records
                if r.agency_id != recipient.id
                and within_clearance(r.classification, recipient.clearance)
            ],
            "reported_by": None,
            "link": None,
        }


# person id -> its views; one input's outputs share one resolver state, so the views made
# for one of them serve the others (``AgencyFeeds`` keeps one cache per golden_version)
ViewCache = dict[str, _PersonViews]


def _views_of(person_id: str, resolver: Resolver, cache: ViewCache | None) -> _PersonViews:
    if cache is None:
        return _PersonViews(person_id, resolver)
    views = cache.get(person_id)
    if views is None:
        views = cache[person_id] = _PersonViews(person_id, resolver)
    return views


def feed_messages(output: Output, resolver: Resolver, agencies: Mapping[str, Agency],
                  produced_at: datetime, cache: ViewCache | None = None,
                  ) -> list[dict[str, Any]]:
    """The feed messages one resolve output makes (pure: reads the resolver, changes
    nothing). Only registered agencies receive any. ``cache``: views already made from the
    same resolver state (the outputs of the same input)."""
    value = output.value
    if value is None:
        return []
    if output.kind == PERSON:
        if value.get("merged_into"):
            return []  # its records' new golden person is upserted too
        views = _views_of(output.key, resolver, cache)
        views.seed(value)
        return [views.message(agencies[agency_id], FeedKind.GOLDEN_CHANGED, output.key,
                              value["golden_version"], produced_at)
                for agency_id in sorted(views.holders()) if agency_id in agencies]
    if output.kind == MAPPING:
        return _record_reported(output.key, value, resolver, agencies, produced_at, cache)
    if output.kind == LINK:
        return _link_reported(value, resolver, agencies, produced_at, cache)
    return []


def _record_reported(key: str, value: Mapping[str, Any], resolver: Resolver,
                     agencies: Mapping[str, Agency], produced_at: datetime,
                     cache: ViewCache | None) -> list[dict[str, Any]]:
    person_id = value.get("person_id")
    record = resolver.records.get(key)
    if person_id is None or record is None:
        return []  # a deletion: the holders' GOLDEN_CHANGED says the record left
    views = _views_of(person_id, resolver, cache)
    messages = []
    for agency_id in sorted(views.holders() - {record.agency_id}):
        if agency_id not in agencies:
            continue
        recipient = agencies[agency_id]
        message = views.message(recipient, FeedKind.RECORD_REPORTED, key,
                                value["golden_version"], produced_at)
        if within_clearance(record.classification, recipient.clearance):
            message["reported_by"] = {"agency_id": record.agency_id,
                                      "source_record_id": record.source_record_id}
        messages.append(message)
    return messages


def _link_reported(value: Mapping[str, Any], resolver: Resolver,
                   agencies: Mapping[str, Agency], produced_at: datetime,
                   cache: ViewCache | None) -> list[dict[str, Any]]:
    source = value["sources"][0]
    reporter = source["agency_id"]
    messages = []
    for entity, person_id in ((value["from_entity"], value["from_id"]),
                              (value["to_entity"], value["to_id"])):
        if entity != "PERSON":
            continue
        views = _views_of(person_id, resolver, cache)
        for agency_id in sorted(views.holders() - {reporter}):
            if agency_id not in agencies:
                continue
            recipient = agencies[agency_id]
            message = views.message(recipient, FeedKind.LINK_REPORTED,
                                    f"{value['link_id']}:{person_id}",
                                    value["golden_version"], produced_at)
            shown = within_clearance(value.get("classification"), recipient.clearance)
            message["link"] = {
                "link_id": value["link_id"],
                "from_entity": value["from_entity"], "from_id": value["from_id"],
                "to_entity": value["to_entity"], "to_id": value["to_id"],
                "link_role": value.get("link_role") if shown else None,
            }
            if shown:
                message["reported_by"] = {"agency_id": reporter,
                                          "source_record_id": source["source_record_id"]}
                message["classification"] = max(
                    (message["classification"], value["classification"]),
                    key=CLEARANCE_ORDER.__getitem__,
                )
            messages.append(message)
    return messages


class AgencyFeeds:
    """Publishes the feed messages of each resolve output (``feed_messages``), keyed by the
    golden person's id, without headers. ``resolver`` gives the stage's resolver now (None
    when there is no stage: nothing to say)."""

    def __init__(self, *, send: Send, topics: TopicNames, serialize: Callable[[], Serialize],
                 agencies: Mapping[str, Agency], resolver: Callable[[], Resolver | None],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._send = send
        self._topics = topics
        self._serialize = serialize  # made on first use: the schema is looked up then
        self._agencies = dict(agencies)
        self._resolver = resolver
        self._clock = clock
        self._outbound = {agency_id: topics.outbound(agency_id) for agency_id in agencies}
        self._cache: ViewCache = {}
        self._cache_state: tuple[int, int] = (0, -1)  # (id of the resolver, golden_version)
        self.sent = 0

    async def __call__(self, output: Output) -> None:
        if output.value is None or output.kind not in (PERSON, MAPPING, LINK):
            return
        resolver = self._resolver()
        if resolver is None:
            return
        state = (id(resolver), output.value.get("golden_version", -1))
        if state != self._cache_state:
            self._cache, self._cache_state = {}, state
        messages = feed_messages(output, resolver, self._agencies, self._clock(), self._cache)
        if not messages:
            return
        serialize = self._serialize()
        for message in messages:
            await self._send(self._outbound[message["agency_id"]],
                             message["person_id"].encode(), serialize(message))
            self.sent += 1
