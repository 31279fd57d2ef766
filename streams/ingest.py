"""Ingest, the pure part: which agency events go on, which are dropped, and why.

For every source record (``<entity>:<agency_id>:<source_record_id>``) ingest holds a
``Held`` entry: the newest ``source_version`` it accepted and the ids of the last few events
it saw for that record. An event is then

- a **replay** when its event_id is among the remembered ids (the same change published again,
  e.g. a producer that restarted before its checkpoint): dropped and counted;
- **stale** when its version is not newer than the held one (an older change arriving late, or
  a different change claiming a version already taken): dropped and counted;
- **accepted** otherwise; the held entry moves to its version.

Memory is bounded per source record, not per event: one version and at most
``REMEMBERED_EVENT_IDS`` event ids, whatever the number of events a record ever had. A replay
older than the remembered window is still dropped, as stale (its version is not newer), so
nothing replayed is ever applied twice; only the counter it lands in differs.

Events that cannot be processed at all raise ``schemas.dead_letters.Rejected`` with a reason code.
So do events from the implausible future (``check_plausible``): a version is a counter or an
updated-at in epoch milliseconds, so one above now + ``FUTURE_TOLERANCE_MS``, or an event time
that far ahead, is forged or broken, and accepting it would make every later genuine change
of the record "stale" (``source_version`` 2**63-1 would freeze it for good).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from schemas.agencies import Agency
from schemas.dead_letters import Rejected
from schemas.reconciled import RECONCILED_MODELS
from schemas.topics import source_key
from streams.resolve.survivorship import GOLDEN_ID_NAMESPACE

REMEMBERED_EVENT_IDS: Final = 4
# How far ahead of now a version (as epoch milliseconds) or an event time may be: clocks drift
# and an agency's updated_at may run ahead, but not by a day.
FUTURE_TOLERANCE_MS: Final = 24 * 60 * 60 * 1000

# Entities resolve reconciles across sources; the others get one golden record per source
# record, straight from ingest.
RESOLVED_ENTITIES: Final = frozenset({"person", "link"})

# Golden id of every other entity: uuid5 of '<agency_id>:<source_record_id>' in a namespace of
# its own per entity (derived from the person namespace), so a case and a person that share a
# source record id never share a golden id. Fixed forever: changing it changes every id.
ENTITY_NAMESPACES: Final[dict[str, uuid.UUID]] = {
    entity: uuid.uuid5(GOLDEN_ID_NAMESPACE, f"tipsync.reconciled.{entity}")
    for entity in ("case", "report", "organisation", "location", "link", "other")
}


class Verdict(StrEnum):
    ACCEPT = "accept"
    REPLAY = "replay"
    STALE = "stale"


@dataclass(frozen=True)
class Held:
    """What ingest remembers of one source record."""

    source_version: int
    event_ids: tuple[str, ...]

    def to_json(self) -> list[Any]:
        return [self.source_version, list(self.event_ids)]

    @classmethod
    def from_json(cls, value: Any) -> Held | None:
        if value is None:
            return None
        version, event_ids = value
        return cls(int(version), tuple(event_ids))


def judge(held: Held | None, event_id: str, source_version: int) -> Verdict:
    if held is None:
        return Verdict.ACCEPT
    if event_id in held.event_ids:
        return Verdict.REPLAY
    if source_version <= held.source_version:
        return Verdict.STALE
    return Verdict.ACCEPT


def remember(
    held: Held | None, event_id: str, source_version: int, keep: int = REMEMBERED_EVENT_IDS
) -> Held:
    """The held entry after seeing an event (accepted or stale: both ids are worth knowing)."""
    if held is None:
        return Held(source_version, (event_id,))
    event_ids = (*held.event_ids, event_id)[-keep:]
    return Held(max(held.source_version, source_version), event_ids)


@dataclass(frozen=True)
class AgencyEvent:
    """An agency change event that decoded and passed ingest's checks."""

    entity: str
    agency_id: str
    source_record_id: str
    event_id: str
    op: str  # UPSERT | DELETE
    source_version: int
    event_time: datetime
    record: dict[str, Any]  # the whole decoded event, envelope and payload

    @property
    def held_key(self) -> str:
        return held_key(self.entity, self.agency_id, self.source_record_id)

    @property
    def source_key(self) -> str:
        return source_key(self.agency_id, self.source_record_id)


def held_key(entity: str, agency_id: str, source_record_id: str) -> str:
    """Key of a source record in ingest's table and on the internal resolve topic (ids only)."""
    return f"{entity}:{agency_id}:{source_record_id}"


def split_held_key(key: str) -> tuple[str, str, str]:
    entity, agency_id, source_record_id = key.split(":", 2)
    return entity, agency_id, source_record_id


def check_plausible(
    entity: str, agency_id: str, source_version: int, event_time: datetime | int | None,
    now_ms: int,
) -> None:
    """Refuse a version or an event time more than ``FUTURE_TOLERANCE_MS`` ahead of
    ``now_ms``: Rejected ``future_version`` or ``future_event_time`` (ids and sizes only)."""
    limit = now_ms + FUTURE_TOLERANCE_MS
    if source_version > limit:
        raise Rejected(
            "future_version",
            f"{entity} event of agency '{agency_id}' has a source_version above now in epoch"
            " milliseconds + 1 day, which no counter or updated-at reaches; it would make every"
            " later change of the record stale: the producer must send a counter or the"
            " record's updated-at in milliseconds",
        )
    if isinstance(event_time, datetime):
        event_ms: int | None = int(event_time.timestamp() * 1000)
    else:  # epoch milliseconds; anything else is the decoder's to refuse
        event_ms = event_time if isinstance(event_time, int) else None
    if event_ms is not None and event_ms > limit:
        raise Rejected(
            "future_event_time",
            f"{entity} event of agency '{agency_id}' has an event_time more than 1 day ahead"
            " of the stream's clock; fix the producer's clock or the time it sends",
        )


BELOW_AGENCY_LABEL: Final = "below_agency_classification"


def hold_to_agency_label(record: dict[str, Any], agency: Agency | None) -> dict[str, Any]:
    """The event's record with its classification raised to the agency's own when it is
    lower and the agency registry does not allow lowering it (a forged or mistaken label must
    not open a record to analysts of a lower clearance). The record is kept; the raise is a
    data-quality issue on ``classification`` (the label, never a value)."""
    if agency is None or agency.permits_label(record.get("classification")):
        return record
    issues = [dict(issue) for issue in record.get("quality_issues") or []]
    issues.append({"field": "classification", "problem": BELOW_AGENCY_LABEL})
    return {**record, "classification": agency.classification, "quality_issues": issues}


def check_event(
    topic_agency: str, entity: str, key: bytes | None, record: Mapping[str, Any],
    now_ms: int | None = None, agency: Agency | None = None,
) -> AgencyEvent:
    """Check a decoded event against its topic, its key, the clock (``now_ms``, epoch
    milliseconds; default the current time) and its agency's label floor (``agency``, from
    the registry; None: no floor); Rejected names what is wrong."""
    agency_id = record.get("agency_id")
    source_record_id = record.get("source_record_id")
    if agency_id != topic_agency:
        raise Rejected(
            "agency_mismatch",
            f"event on the topic of agency '{topic_agency}' says agency_id '{agency_id}'; an "
            "agency publishes only under its own prefix: fix the producer's agency or topic",
        )
    expected_key = f"{agency_id}:{source_record_id}"
    if key is None or key.decode("utf-8", errors="replace") != expected_key:
        raise Rejected(
            "key_mismatch",
            f"{entity} event of agency '{agency_id}' has key "
            f"{'none' if key is None else repr(key[:80].decode('utf-8', errors='replace'))}, "
            "not '<agency_id>:<source_record_id>' of its payload; the producer must key each "
            "event by its source record so its changes stay in order",
        )
    op = record.get("op")
    payload = record.get("payload")
    if op not in ("UPSERT", "DELETE") or (op == "UPSERT") != (payload is not None):
        raise Rejected(
            "invalid_envelope",
            f"{entity} event of agency '{agency_id}' has op {op!r} with "
            f"{'a' if payload is not None else 'no'} payload; publish UPSERT with a payload or "
            "DELETE without one",
        )
    version = record.get("source_version")
    if not isinstance(version, int) or version < 0:
        raise Rejected(
            "invalid_envelope",
            f"{entity} event of agency '{agency_id}' has source_version {version!r}; it must "
            "be a whole number >= 0 that grows with every change of the record",
        )
    check_plausible(entity, str(agency_id), version, record.get("event_time"),
                    int(time.time() * 1000) if now_ms is None else now_ms)
    return AgencyEvent(
        entity=entity,
        agency_id=str(agency_id),
        source_record_id=str(source_record_id),
        event_id=str(record.get("event_id")),
        op=str(op),
        source_version=version,
        event_time=record["event_time"],
        record=hold_to_agency_label(dict(record), agency),
    )


def entity_golden_id(entity: str, agency_id: str, source_record_id: str) -> str:
    """Golden id of a non-person record: uuid5 of '<agency_id>:<source_record_id>'."""
    return str(uuid.uuid5(ENTITY_NAMESPACES[entity], f"{agency_id}:{source_record_id}"))


def golden_id_field(entity: str) -> str:
    key_field = RECONCILED_MODELS[entity].key_field
    assert key_field is not None
    return key_field


def golden_entity(event: AgencyEvent) -> tuple[str, dict[str, Any] | None]:
    """The golden record of a case, report, organisation or location event.

    One source record, one golden record: its id is ``entity_golden_id``, its golden_version
    the source_version (monotonic per record, so the sink never takes an older one), its
    fields the payload's. A DELETE gives ``None``: a tombstone, the golden record is gone.
    """
    golden = entity_golden_id(event.entity, event.agency_id, event.source_record_id)
    if event.op == "DELETE":
        return golden, None
    value: dict[str, Any] = dict(event.record["payload"])
    value[golden_id_field(event.entity)] = golden
    value["golden_version"] = event.source_version
    value["classification"] = event.record.get("classification") or "VICTIM_PROTECTED"
    value["sources"] = [source_of(event)]
    return golden, value


def source_of(event: AgencyEvent) -> dict[str, Any]:
    """The golden record's lineage entry of this event's source record, with the event's
    data-quality issues (values the producer left out) when it has any, and its
    data-protection terms (retention date, legal basis, consent reference) when set."""
    source = {
        "agency_id": event.agency_id,
        "source_record_id": event.source_record_id,
        "source_version": event.source_version,
        "event_time": event.event_time,
        "deleted": event.op == "DELETE",
    }
    issues = event.record.get("quality_issues")
    if issues and event.op != "DELETE":
        source["quality_issues"] = [dict(issue) for issue in issues]
    for term in ("retention_until", "legal_basis", "consent_ref"):
        if event.record.get(term) is not None:
            source[term] = event.record[term]
    return source
