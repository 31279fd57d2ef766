"""The golden person of a cluster: which source wins each field, and the lineage that says so.

Per field group, the sources that *have* a value compete; the winner is the one whose agency
is most trusted for that group (rank 1 is the most trusted, from ``deploy/agencies.yaml``),
then the most recent, then the most complete, then the lowest source key (so ties never
depend on arrival order). List fields (aliases, citizenship, identifiers, phones, emails,
addresses) are the union of all sources, in that same order. The classification is the most
protective label any source gave: a record that one agency marks VICTIM_PROTECTED stays
protected whoever else knows the person.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from schemas.enums import Classification
from streams.resolve.normalise import (
    normalise_email,
    normalise_identifier,
    normalise_phone,
    spelling_key,
)
from streams.resolve.records import (
    SourceRecord,
    as_source_record,
    from_epoch_millis,
    source_key,
)

# agency_id -> field group -> rank (1 = most trusted); "default" covers groups not listed
TrustRanks = Mapping[str, Mapping[str, int]]
UNRANKED = 1_000

# Golden ids are uuid5 of the anchor record's source key in this namespace (fixed forever:
# changing it would change every golden id).
GOLDEN_ID_NAMESPACE = uuid.UUID("6f1c1a52-3b7e-5d8a-9c0e-7a4b2d9e1f30")

CLASSIFICATION_ORDER = {label: Classification.rank(label) for label in Classification.symbols()}
_PRECISION_COMPLETENESS = {"DAY": 3, "MONTH": 2, "YEAR": 1}

# field group -> the golden fields it fills from one winning source
SCALAR_GROUPS: dict[str, tuple[str, ...]] = {
    "name": ("given_name", "middle_name", "family_name"),
    "date_of_birth": ("date_of_birth", "dob_precision"),
    "sex": ("sex",),
}


def _anchor_order(record: SourceRecord) -> tuple[int, str, str]:
    """The earliest-seen record anchors its cluster's id (ties broken by the source key)."""
    return (record.first_event_time, record.agency_id, record.source_record_id)


_NAMESPACE_BYTES = GOLDEN_ID_NAMESPACE.bytes


# A cluster's id is derived again every time it is re-clustered: cached, and computed without
# the uuid module's objects (a tenth of ``str(uuid.uuid5(...))``'s time, the same text).
@lru_cache(maxsize=1 << 16)
def person_golden_id(key: str) -> str:
    """The id of a cluster anchored on the source record ``key`` (``<agency>:<record id>``)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + key.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def golden_id(records: Sequence[Mapping[str, Any]]) -> str:
    """The cluster's id: stable while its earliest member stays, and the older id wins a merge."""
    anchor = min(map(as_source_record, records), key=_anchor_order)
    return person_golden_id(source_key(anchor.agency_id, anchor.source_record_id))


def _rank(trust: TrustRanks, agency_id: str, group: str) -> int:
    ranks = trust.get(agency_id, {})
    return ranks.get(group, ranks.get("default", UNRANKED))


def _completeness(record: SourceRecord, group: str) -> int:
    if group == "name":
        parts = (record.given_name, record.middle_name, record.family_name)
        return sum(len(part or "") > 0 for part in parts) * 100 + sum(
            len(part or "") for part in parts
        )
    if group == "date_of_birth":
        return _PRECISION_COMPLETENESS.get(record.dob_precision or "DAY", 0)
    return 1


def _has_value(record: SourceRecord, group: str) -> bool:
    if group == "name":
        return bool(record.given_name or record.family_name)
    if group == "sex":
        return record.sex not in (None, "", "UNKNOWN")
    return bool(getattr(record, group))


def _preference(trust: TrustRanks, group: str) -> Callable[
    [SourceRecord], tuple[int, int, int, str, str]
]:
    def order(record: SourceRecord) -> tuple[int, int, int, str, str]:
        return (
            _rank(trust, record.agency_id, group),
            -record.event_time,
            -_completeness(record, group),
            record.agency_id,
            record.source_record_id,
        )

    return order


def _lineage(field: str, record: SourceRecord, event_time: datetime) -> dict[str, Any]:
    return {
        "field": field,
        "agency_id": record.agency_id,
        "source_record_id": record.source_record_id,
        "source_version": record.source_version,
        "event_time": event_time,
    }


# When two list items are the same item. Names and addresses compare as spelled (case, accents
# and punctuation aside), not transliterated: "Иван Петров" next to "Ivan Petrov" is a second
# spelling an analyst may search for, though matching reads both as one name.
_LIST_IDENTITY: dict[str, Callable[[Any], Any]] = {
    "aliases": spelling_key,
    "citizenship": lambda item: (item or "").upper(),
    "identifiers": lambda item: (
        item.get("scheme"), normalise_identifier(item.get("value")), item.get("issuing_country")
    ),
    "phones": normalise_phone,
    "emails": normalise_email,
    "addresses": lambda item: (spelling_key(item.get("line"), digits=True), item.get("parish")),
}
_LIST_GROUP = {
    "aliases": "name", "citizenship": "citizenship", "identifiers": "identifiers",
    "phones": "contact", "emails": "contact", "addresses": "address",
}


def _full_name(record: Mapping[str, Any]) -> str:
    parts = (record.get("given_name"), record.get("middle_name"), record.get("family_name"))
    return " ".join(part for part in parts if part)


def _record_full_name(record: SourceRecord) -> str:
    parts = (record.given_name, record.middle_name, record.family_name)
    return " ".join(part for part in parts if part)


def _source(record: SourceRecord, event_time: datetime) -> dict[str, Any]:
    """A golden person's lineage entry of one source record, with its data-quality issues
    and data-protection terms when it has them (a key is left out otherwise: the Avro
    defaults are an empty list and null)."""
    source: dict[str, Any] = {
        "agency_id": record.agency_id,
        "source_record_id": record.source_record_id,
        "source_version": record.source_version,
        "event_time": event_time,
        "deleted": False,
    }
    if record.quality_issues:
        source["quality_issues"] = record.list_values("quality_issues")
    if record.retention_until:
        source["retention_until"] = date.fromisoformat(record.retention_until)
    if record.legal_basis:
        source["legal_basis"] = record.legal_basis
    if record.consent_ref:
        source["consent_ref"] = record.consent_ref
    return source


def golden_person(
    person_id: str, records: Sequence[Mapping[str, Any]], trust: TrustRanks
) -> dict[str, Any]:
    """The GoldenPerson value (without golden_version) of one cluster of source records."""
    held = [as_source_record(record) for record in records]
    event_times = {id(record): from_epoch_millis(record.event_time) for record in held}
    # Each group's order of preference, computed once (several list fields share a group).
    preferred: dict[str, list[SourceRecord]] = {}

    def in_preference_order(group: str) -> list[SourceRecord]:
        order = preferred.get(group)
        if order is None:
            order = preferred[group] = (
                held if len(held) == 1 else sorted(held, key=_preference(trust, group))
            )
        return order

    golden: dict[str, Any] = {"person_id": person_id, "merged_into": None}
    lineage: list[dict[str, Any]] = []
    for group, fields in SCALAR_GROUPS.items():
        candidates = [record for record in held if _has_value(record, group)]
        if not candidates:
            for field in fields:
                golden[field] = None
            continue
        winner = candidates[0] if len(candidates) == 1 else min(
            candidates, key=_preference(trust, group)
        )
        for field in fields:
            value = getattr(winner, field)
            golden[field] = value
            if value:
                lineage.append(_lineage(field, winner, event_times[id(winner)]))
    if golden["date_of_birth"] and not golden["dob_precision"]:
        golden["dob_precision"] = "DAY"
    elif not golden["date_of_birth"]:
        # No source has a valid date: the text of an invalid one, by the same preference as
        # the date (the key is left out when there is none: such records stay as they were).
        texts = [record for record in held if record.date_of_birth_text]
        if texts:
            winner = min(texts, key=_preference(trust, "date_of_birth"))
            golden["date_of_birth_text"] = winner.date_of_birth_text
            lineage.append(_lineage("date_of_birth_text", winner, event_times[id(winner)]))
    if golden["sex"] is None:
        golden["sex"] = "UNKNOWN"

    for field, group in _LIST_GROUP.items():
        seen: set[Any] = set()
        values: list[Any] = []
        identity_of = _LIST_IDENTITY[field]
        for record in in_preference_order(group):
            if not getattr(record, field):
                continue
            contributed = False
            for item in record.list_values(field):
                identity = identity_of(item)
                if identity and identity not in seen:
                    seen.add(identity)
                    values.append(item)
                    contributed = True
            if contributed:
                lineage.append(_lineage(field, record, event_times[id(record)]))
        golden[field] = values

    # Other sources' spellings of the name are kept as aliases: an analyst searching for the
    # name an agency used must still find the person.
    # Golden values are the winning agency's own text; only this comparison is folded.
    golden_name = spelling_key(_full_name(golden))
    known = {spelling_key(alias) for alias in golden["aliases"]} | {golden_name}
    for record in in_preference_order("name"):
        name = _record_full_name(record)
        if name and spelling_key(name) not in known:
            known.add(spelling_key(name))
            golden["aliases"].append(name)

    labels = [str(record.classification) for record in held if record.classification]
    golden["classification"] = max(
        labels, key=lambda label: CLASSIFICATION_ORDER.get(label, len(CLASSIFICATION_ORDER))
    ) if labels else "VICTIM_PROTECTED"
    if golden["classification"] not in CLASSIFICATION_ORDER:
        # A label this code does not know yet is read as the most protective one.
        golden["classification"] = "VICTIM_PROTECTED"
    golden["first_seen"] = from_epoch_millis(min(r.first_event_time for r in held))
    golden["last_updated"] = from_epoch_millis(max(r.event_time for r in held))
    golden["sources"] = [
        _source(record, event_times[id(record)])
        for record in (held if len(held) == 1 else sorted(
            held, key=lambda r: (r.agency_id, r.source_record_id)
        ))
    ]
    golden["lineage"] = lineage
    return golden
