"""The closed vocabularies of the contract, shared by the Avro schemas and the pydantic models.

Every enum carries an Avro *default symbol* (``avro_default``): an older consumer that meets a
symbol added after it was built reads the default instead of failing, so adding a symbol later
stays compatible. The default is chosen per vocabulary so that this fallback is the safe
reading (``UNKNOWN`` or ``OTHER`` where one exists; the most protective label for
classifications; the coarsest precision for dates).
"""

from __future__ import annotations

import re
from enum import StrEnum


class ContractEnum(StrEnum):
    """A vocabulary of the contract: its symbols are its values, upper case, Avro-safe."""

    @classmethod
    def avro_default(cls) -> ContractEnum:
        for candidate in ("UNKNOWN", "OTHER"):
            if candidate in cls.__members__:
                return cls[candidate]
        raise TypeError(f"{cls.__name__} has no UNKNOWN or OTHER symbol; override avro_default")

    @classmethod
    def symbols(cls) -> list[str]:
        return [member.value for member in cls]


class Operation(ContractEnum):
    """What happened to the source record. A DELETE carries no payload."""

    UPSERT = "UPSERT"
    DELETE = "DELETE"
    # Only an older reader sees UNKNOWN (for an operation added later); nobody publishes it.
    UNKNOWN = "UNKNOWN"


class Classification(ContractEnum):
    """Sensitivity label that access control uses, from least to most protected."""

    OFFICIAL = "OFFICIAL"
    SENSITIVE = "SENSITIVE"
    VICTIM_PROTECTED = "VICTIM_PROTECTED"

    @classmethod
    def avro_default(cls) -> ContractEnum:
        # A reader that does not know a new label must protect the record as much as it can.
        return cls.VICTIM_PROTECTED

    @classmethod
    def rank(cls, label: str | None) -> int:
        """0 for OFFICIAL up to 2 for VICTIM_PROTECTED; an unknown or missing label ranks as
        the most protected (what ``avro_default`` reads it as)."""
        return _CLASSIFICATION_RANKS.get(label or "", len(_CLASSIFICATION_RANKS) - 1)


# label -> rank, made once: ``Classification.rank`` runs for every event ingest and resolve read
_CLASSIFICATION_RANKS: dict[str, int] = {
    member.value: rank for rank, member in enumerate(Classification)
}


class LegalBasis(ContractEnum):
    """Why the agency may process and share the record (Data Protection Act 2020, Jamaica)."""

    CONSENT = "CONSENT"
    LEGAL_OBLIGATION = "LEGAL_OBLIGATION"
    VITAL_INTERESTS = "VITAL_INTERESTS"
    PUBLIC_FUNCTION = "PUBLIC_FUNCTION"
    ADMINISTRATION_OF_JUSTICE = "ADMINISTRATION_OF_JUSTICE"
    LEGITIMATE_INTERESTS = "LEGITIMATE_INTERESTS"
    UNKNOWN = "UNKNOWN"


class Sex(ContractEnum):
    FEMALE = "FEMALE"
    MALE = "MALE"
    OTHER = "OTHER"
    UNKNOWN = "UNKNOWN"


class DatePrecision(ContractEnum):
    """How much of a date is known; unknown month and day are written as 01."""

    DAY = "DAY"
    MONTH = "MONTH"
    YEAR = "YEAR"

    @classmethod
    def avro_default(cls) -> ContractEnum:
        # Reading an unknown precision as YEAR never claims more than the source knew.
        return cls.YEAR


class IdentifierScheme(ContractEnum):
    """Which register issued an identifier (Jamaica first: TRN, NIN, passport, licence, NIS)."""

    TRN = "TRN"
    NIN = "NIN"
    PASSPORT = "PASSPORT"
    DRIVERS_LICENCE = "DRIVERS_LICENCE"
    NIS = "NIS"
    OTHER = "OTHER"


class Parish(ContractEnum):
    """The fourteen parishes of Jamaica."""

    KINGSTON = "KINGSTON"
    ST_ANDREW = "ST_ANDREW"
    ST_THOMAS = "ST_THOMAS"
    PORTLAND = "PORTLAND"
    ST_MARY = "ST_MARY"
    ST_ANN = "ST_ANN"
    TRELAWNY = "TRELAWNY"
    ST_JAMES = "ST_JAMES"
    HANOVER = "HANOVER"
    WESTMORELAND = "WESTMORELAND"
    ST_ELIZABETH = "ST_ELIZABETH"
    MANCHESTER = "MANCHESTER"
    CLARENDON = "CLARENDON"
    ST_CATHERINE = "ST_CATHERINE"
    UNKNOWN = "UNKNOWN"


PARISH_NAMES: dict[Parish, str] = {
    Parish.KINGSTON: "Kingston",
    Parish.ST_ANDREW: "St. Andrew",
    Parish.ST_THOMAS: "St. Thomas",
    Parish.PORTLAND: "Portland",
    Parish.ST_MARY: "St. Mary",
    Parish.ST_ANN: "St. Ann",
    Parish.TRELAWNY: "Trelawny",
    Parish.ST_JAMES: "St. James",
    Parish.HANOVER: "Hanover",
    Parish.WESTMORELAND: "Westmoreland",
    Parish.ST_ELIZABETH: "St. Elizabeth",
    Parish.MANCHESTER: "Manchester",
    Parish.CLARENDON: "Clarendon",
    Parish.ST_CATHERINE: "St. Catherine",
}


def parish_from_text(text: str) -> Parish:
    """The parish an agency wrote as 'St. Andrew', 'ST ANDREW', 'Saint Andrew' or 'ST_ANDREW'.

    Raises ValueError naming the text and the fourteen accepted names.
    """
    words = re.sub(r"[^A-Z]+", " ", text.upper()).split()
    if words and words[0] == "SAINT":
        words[0] = "ST"
    symbol = "_".join(words)
    if symbol in Parish.__members__:
        return Parish[symbol]
    accepted = ", ".join(PARISH_NAMES.values())
    raise ValueError(f"'{text}' is not a parish of Jamaica (expected one of: {accepted})")


class CaseStatus(ContractEnum):
    OPEN = "OPEN"
    UNDER_INVESTIGATION = "UNDER_INVESTIGATION"
    PROSECUTION = "PROSECUTION"
    CLOSED = "CLOSED"
    UNKNOWN = "UNKNOWN"


class FormOfExploitation(ContractEnum):
    """Forms of exploitation (Palermo Protocol), grouped as HTCDS and Jamaican law do."""

    SEXUAL = "SEXUAL"
    LABOUR = "LABOUR"
    DOMESTIC_SERVITUDE = "DOMESTIC_SERVITUDE"
    FORCED_CRIMINALITY = "FORCED_CRIMINALITY"
    FORCED_MARRIAGE = "FORCED_MARRIAGE"
    ORGAN_REMOVAL = "ORGAN_REMOVAL"
    OTHER = "OTHER"


class ReportChannel(ContractEnum):
    HOTLINE = "HOTLINE"
    WALK_IN = "WALK_IN"
    EMAIL = "EMAIL"
    REFERRAL = "REFERRAL"
    ONLINE = "ONLINE"
    OTHER = "OTHER"


class OrganisationType(ContractEnum):
    COMPANY = "COMPANY"
    NGO = "NGO"
    GOVERNMENT = "GOVERNMENT"
    INFORMAL = "INFORMAL"
    OTHER = "OTHER"


class LocationRole(ContractEnum):
    """The part a place played (HTCDS historic trafficking event types, plus residence)."""

    RECRUITMENT = "RECRUITMENT"
    TRANSIT = "TRANSIT"
    EXPLOITATION = "EXPLOITATION"
    RESIDENCE = "RESIDENCE"
    OTHER = "OTHER"


class EntityType(ContractEnum):
    """The kind of record at one end of a link."""

    PERSON = "PERSON"
    CASE = "CASE"
    REPORT = "REPORT"
    ORGANISATION = "ORGANISATION"
    LOCATION = "LOCATION"
    OTHER = "OTHER"


class LinkRole(ContractEnum):
    """What a link says: victim and suspect are roles on links, never attributes of a person."""

    VICTIM = "VICTIM"
    SUSPECT = "SUSPECT"
    WITNESS = "WITNESS"
    REPORTER = "REPORTER"
    EMPLOYER = "EMPLOYER"
    OWNER = "OWNER"
    LOCATED_AT = "LOCATED_AT"
    ASSOCIATE = "ASSOCIATE"
    OTHER = "OTHER"


class MatchOutcome(ContractEnum):
    """The verdict of entity resolution on one pair of source records."""

    MATCH = "MATCH"
    NON_MATCH = "NON_MATCH"
    REVIEW = "REVIEW"

    @classmethod
    def avro_default(cls) -> ContractEnum:
        # A verdict an older reader cannot interpret goes to a human.
        return cls.REVIEW


class StewardDecisionKind(ContractEnum):
    """What a steward decided about a pair of source records (``tipsync review decide``)."""

    MUST_LINK = "MUST_LINK"
    CANNOT_LINK = "CANNOT_LINK"
    WITHDRAWN = "WITHDRAWN"

    @classmethod
    def avro_default(cls) -> ContractEnum:
        # A kind an older reader cannot interpret binds nothing: the resolver decides alone.
        return cls.WITHDRAWN


class FeedKind(ContractEnum):
    """What a message of an agency's feed (``tip.outbound.<agency_id>``) tells it."""

    GOLDEN_CHANGED = "GOLDEN_CHANGED"
    RECORD_REPORTED = "RECORD_REPORTED"
    LINK_REPORTED = "LINK_REPORTED"
    # ``tipsync erase`` removed a record of the person: what earlier messages said goes
    RECORD_ERASED = "RECORD_ERASED"
    # Only an older reader sees OTHER (for a kind added later); nobody publishes it.
    OTHER = "OTHER"


ALL_ENUMS: tuple[type[ContractEnum], ...] = (
    Operation,
    Classification,
    LegalBasis,
    Sex,
    DatePrecision,
    IdentifierScheme,
    Parish,
    CaseStatus,
    FormOfExploitation,
    ReportChannel,
    OrganisationType,
    LocationRole,
    EntityType,
    LinkRole,
    MatchOutcome,
    StewardDecisionKind,
    FeedKind,
)
