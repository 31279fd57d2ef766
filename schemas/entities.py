"""The entity types of the contract and the names of their schemas.

A *schema name* is how code asks for a governed schema: the entity for an agency change event
(``"person"``), ``"reconciled.<entity>"`` for a golden record (``"reconciled.person"``) and
``"reconciled.match_decision"`` for entity-resolution verdicts, and ``"stewardship.decision"``
for a steward's decision about a pair of records, ``"outbound.message"`` for a message of an
agency's feed. Each schema is registered under
one subject, its Avro full name (subject naming by record name): ``tipsync.agency.Person``,
``tipsync.reconciled.GoldenPerson``, ``tipsync.reconciled.MatchDecision``,
``tipsync.stewardship.StewardDecision``, ``tipsync.outbound.FeedMessage``.
"""

from __future__ import annotations

from typing import Final

ENTITIES: Final[tuple[str, ...]] = ("person", "case", "report", "organisation", "location", "link")

RECONCILED_PREFIX: Final = "reconciled."
MATCH_DECISION: Final = "match_decision"

AGENCY_NAMESPACE: Final = "tipsync.agency"
RECONCILED_NAMESPACE: Final = "tipsync.reconciled"
COMMON_NAMESPACE: Final = "tipsync.common"
STEWARDSHIP_NAMESPACE: Final = "tipsync.stewardship"
OUTBOUND_NAMESPACE: Final = "tipsync.outbound"

# A steward's must-link / cannot-link decision (``schemas.stewardship``).
STEWARD_DECISION: Final = "stewardship.decision"
# A message of an agency's feed, tip.outbound.<agency_id> (``schemas.outbound``).
FEED_MESSAGE: Final = "outbound.message"

# Reconciled outputs: one per entity plus the match decisions of entity resolution.
RECONCILED_OUTPUTS: Final[tuple[str, ...]] = (*ENTITIES, MATCH_DECISION)

SCHEMA_NAMES: Final[tuple[str, ...]] = (
    *ENTITIES,
    *(RECONCILED_PREFIX + output for output in RECONCILED_OUTPUTS),
    STEWARD_DECISION,
    FEED_MESSAGE,
)


def check_entity(entity: str) -> str:
    """Return ``entity`` if it is one of ENTITIES, else raise ValueError naming the choices."""
    if entity not in ENTITIES:
        raise ValueError(
            f"entity '{entity}' is not an entity type of the contract "
            f"(expected one of: {', '.join(ENTITIES)})"
        )
    return entity
