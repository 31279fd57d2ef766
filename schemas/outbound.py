"""What the task force sends back to one agency: the ``FeedMessage`` of ``tip.outbound.<id>``.

Each agency's feed (``TopicNames.outbound``) carries, within the agency's *clearance*
(``Agency.clearance``, deploy/agencies.yaml; default its own classification):

- ``GOLDEN_CHANGED``: a golden person that holds one of the agency's own records changed
  (a record joined or left it, a value changed, a steward's decision moved it);
- ``RECORD_REPORTED``: another agency's person record now resolves to a golden person that
  holds one of the agency's records (an alert: "someone else knows this person");
- ``LINK_REPORTED``: another agency reported a link (person-case, person-organisation, ...)
  one of whose ends is such a golden person;
- ``RECORD_ERASED``: ``tipsync erase`` removed a record of a golden person the agency was
  sent messages about (sent by the erasure, not the stream): the messages about that person
  whose ``golden_version`` is below this one's may hold the erased record's values, and the
  agency's side deletes what it stored from them; this message shows no value, and
  ``your_records`` lists the agency's own records that were erased (never another agency's).

Clearance rules (docs/STREAMS.md "Feeds to agencies"): a message shows only what records at or
below the clearance say. ``person`` is the golden person made by the same survivorship from
those records alone, so a value only a VICTIM_PROTECTED record holds never reaches an agency
cleared for SENSITIVE; ``holders`` names only those records; a reporting record or a link
above the clearance is announced without its agency, its id or its role.

Messages are keyed by the golden person's id (no personal data, one partition per person so
its messages stay in order) and carry no headers. ``message_id`` is derived from what the
message is about and the golden version, so a message published again after a crash has the
same id and the agency's side stores it once.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import ClassVar

from pydantic import Field

from schemas.entities import OUTBOUND_NAMESPACE
from schemas.enums import Classification, EntityType, FeedKind, LinkRole
from schemas.models import ContractModel, PersonPayload
from schemas.reconciled import SourceKey
from schemas.values import Timestamp, Uuid

# message ids are uuid5 in this namespace (fixed forever: the agency side deduplicates by id)
FEED_MESSAGE_NAMESPACE = uuid.UUID("0b8e6c3e-5f1d-5a52-9d39-2f4a7c1e8b64")

CLEARANCE_ORDER: dict[str, int] = {
    label: rank for rank, label in enumerate(Classification.symbols())
}


def within_clearance(label: str | None, clearance: str) -> bool:
    """Whether a value labelled ``label`` may be shown to an agency cleared for
    ``clearance``. A missing or unknown label is read as the most protective one."""
    top = len(CLEARANCE_ORDER) - 1
    return CLEARANCE_ORDER.get(label or "", top) <= CLEARANCE_ORDER.get(clearance, -1)


def feed_message_id(agency_id: str, kind: str, subject: str, golden_version: int) -> str:
    """The id of a feed message: the same recipient, kind, subject (a golden id, a source
    key or a link id) and golden version give the same id."""
    # uuid.uuid5 spelled out (the same id): a message of every feed of every update makes
    # one, and the UUID object in between cost a third of it.
    digest = hashlib.sha1(
        _NAMESPACE_BYTES + f"{agency_id}|{kind}|{subject}|{golden_version}".encode()
    ).digest()
    value = int.from_bytes(digest[:16]) & _VERSION_MASK | _VERSION_5
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_NAMESPACE_BYTES = FEED_MESSAGE_NAMESPACE.bytes
# RFC 4122: the variant (bits 62-63 of the low half: 10) and the version (bits 76-79: 5)
_VERSION_MASK = ~((0xC000 << 48) | (0xF000 << 64))
_VERSION_5 = (0x8000 << 48) | (5 << 76)


class FeedLink(ContractModel):
    """The link a ``LINK_REPORTED`` alert is about."""

    avro_name: ClassVar[str] = f"{OUTBOUND_NAMESPACE}.FeedLink"

    link_id: Uuid = Field(description="Golden id of the link (tip.reconciled.link).")
    from_entity: EntityType = Field(description="Entity type of the start.")
    from_id: Uuid = Field(description="Golden id of the start.")
    to_entity: EntityType = Field(description="Entity type of the end.")
    to_id: Uuid = Field(description="Golden id of the end.")
    link_role: LinkRole | None = Field(
        None, description="What the link says; null when the link is above your clearance."
    )


class FeedMessage(ContractModel):
    """One message of an agency's feed. Key: person_id."""

    avro_name: ClassVar[str] = f"{OUTBOUND_NAMESPACE}.FeedMessage"
    key_field: ClassVar[str | None] = "person_id"

    person_id: Uuid = Field(description="The golden person the message is about.")
    message_id: Uuid = Field(
        description="Same message, same id (republished after a crash): store it once."
    )
    agency_id: str = Field(description="The agency the feed belongs to (the recipient).")
    kind: FeedKind = Field(
        description="GOLDEN_CHANGED, RECORD_REPORTED (alert), LINK_REPORTED (alert) or"
        " RECORD_ERASED (delete what earlier messages about the person said)."
    )
    golden_version: int = Field(
        ge=0, description="The golden person's version when the message was made"
        " (RECORD_ERASED: messages about the person below it may hold erased values)."
    )
    produced_at: Timestamp = Field(description="When the stream app made the message.")
    your_records: list[str] = Field(
        [], description="Your own source_record_ids among the golden person's records"
        " (RECORD_ERASED: those of yours that were erased)."
    )
    classification: Classification = Field(
        description="The most protective label of what the message shows (never above your "
        "clearance)."
    )
    person: PersonPayload | None = Field(
        None,
        description="The golden person made from the records within your clearance only "
        "(null when none is).",
    )
    holders: list[SourceKey] = Field(
        [], description="Other agencies' records of the person, those within your clearance."
    )
    reported_by: SourceKey | None = Field(
        None,
        description="Alerts: the record that was reported; null when it is above your "
        "clearance.",
    )
    link: FeedLink | None = Field(None, description="LINK_REPORTED: the link.")
