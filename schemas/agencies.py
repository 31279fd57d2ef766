"""The agency registry: who may publish, and how far each agency is trusted per field group.

``deploy/agencies.yaml`` (or the file its variable names, ``schemas.config.AGENCIES``) lists
the task force. Trust is a rank from 1 (least) to 10 (most trusted) per *field group*;
survivorship in the resolve stage keeps, for each group, the value from the most trusted
source. An agency gives a ``default`` rank and overrides it for the groups where it is the
authority (the passport office for identifiers, the police for names of suspects, ...).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from schemas import config
from schemas.enums import Classification, LegalBasis

AGENCY_ID_PATTERN: Final = r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?"
_AGENCY_ID = re.compile(AGENCY_ID_PATTERN)

AGENCY_KINDS: Final[tuple[str, ...]] = ("government", "ngo")

# Field groups that survivorship ranks separately (see docs/DATA_MODEL.md).
FIELD_GROUPS: Final[tuple[str, ...]] = (
    "names",
    "date_of_birth",
    "sex",
    "citizenship",
    "identifiers",
    "contact",
    "address",
    "case",
    "organisation",
    "location",
)
TRUST_MIN: Final = 1
TRUST_MAX: Final = 10


class InvalidAgencyIdError(ValueError):
    """An agency id that cannot be a topic segment or an ACL prefix."""


class UnknownAgencyError(ValueError):
    """A well-formed agency id that is not in the agency registry."""

    def __init__(self, agency_id: str, known: Collection[str]) -> None:
        self.agency_id = agency_id
        super().__init__(
            f"agency_id '{agency_id}' is not in the agency registry "
            f"(known: {', '.join(sorted(known))}); add it to deploy/agencies.yaml "
            "or fix the id"
        )


class AgencyRegistryError(ValueError):
    """The agency registry file is missing or malformed."""


def validate_agency_id(agency_id: str) -> str:
    """Return ``agency_id`` if it is well formed, else raise InvalidAgencyIdError saying why.

    Agency ids become topic names (``tip.agency.<id>.<entity>``) and ACL prefixes, so they are
    lower-case letters, digits and '-', start and end with a letter or digit, at most 40 long.
    """
    if not isinstance(agency_id, str):
        raise InvalidAgencyIdError(f"agency id {agency_id!r} is not a string")
    if _AGENCY_ID.fullmatch(agency_id):
        return agency_id
    if not agency_id:
        problem = "is empty"
    elif len(agency_id) > 40:
        problem = f"is {len(agency_id)} characters long (at most 40)"
    elif agency_id != agency_id.lower():
        problem = "has upper-case letters (use lower case)"
    elif agency_id.startswith("-") or agency_id.endswith("-"):
        problem = "starts or ends with '-'"
    else:
        problem = "has characters other than a-z, 0-9 and '-'"
    raise InvalidAgencyIdError(
        f"agency id '{agency_id}' {problem}; agency ids are lower-case letters, digits and '-', "
        "e.g. 'police-ctu'"
    )


@dataclass(frozen=True)
class Agency:
    """One member of the task force.

    ``trust`` has a rank for every group of FIELD_GROUPS. ``classification`` and
    ``legal_basis`` are what its producer puts in the envelope unless a record says otherwise;
    ``retention_days`` sets ``retention_until`` (None: no fixed end). ``classification`` is
    also the agency's floor: its events are labelled at least that, unless
    ``may_lower_classification`` (an explicit, reviewable line in the registry) allows a
    producer run to label lower (``permits_label``).
    ``clearance`` is the most
    protective label the agency may receive in its feed (``schemas.outbound``); it defaults to
    its classification.
    """

    id: str
    name: str
    kind: str
    trust: dict[str, int] = field(default_factory=dict)
    classification: str = Classification.SENSITIVE.value
    legal_basis: str = LegalBasis.PUBLIC_FUNCTION.value
    retention_days: int | None = None
    clearance: str = Classification.SENSITIVE.value
    may_lower_classification: bool = False

    def permits_label(self, label: str | None) -> bool:
        """Whether an event of this agency may carry ``label``: at least the agency's
        default classification, or anything when the registry allows lowering it."""
        return self.may_lower_classification or (
            Classification.rank(label) >= Classification.rank(self.classification)
        )


def default_agencies_path() -> Path:
    """The file the environment names (``config.AGENCIES``), else the checkout's own."""
    configured = config.agencies_file()
    return configured or Path(__file__).resolve().parents[1] / "deploy" / "agencies.yaml"


def load_agencies(path: Path | str | None = None) -> dict[str, Agency]:
    """Read the agency registry (default: ``config.AGENCIES`` or deploy/agencies.yaml).

    Raises AgencyRegistryError naming the file, the agency and the problem.
    """
    source = Path(path) if path is not None else default_agencies_path()
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as error:
        raise AgencyRegistryError(
            f"agency registry {source} cannot be read ({error.strerror}); "
            f"set {config.AGENCIES} to the file or create deploy/agencies.yaml"
        ) from None
    except yaml.YAMLError as error:
        raise AgencyRegistryError(f"agency registry {source} is not valid YAML: {error}") from None
    return parse_agencies(document, str(source))


def parse_agencies(document: Any, source: str = "agency registry") -> dict[str, Agency]:
    """The pure half of load_agencies: a parsed YAML document -> agencies by id."""
    if not isinstance(document, Mapping) or not isinstance(document.get("agencies"), list):
        raise AgencyRegistryError(f"{source}: expected a mapping with a list under 'agencies'")
    agencies: dict[str, Agency] = {}
    for position, entry in enumerate(document["agencies"], start=1):
        agency = _parse_agency(entry, f"{source}: agency #{position}")
        if agency.id in agencies:
            raise AgencyRegistryError(f"{source}: agency id '{agency.id}' is listed twice")
        agencies[agency.id] = agency
    return agencies


def _parse_agency(entry: Any, where: str) -> Agency:
    if not isinstance(entry, Mapping):
        raise AgencyRegistryError(f"{where} is not a mapping of id, name, kind, trust")
    unknown = set(entry) - {
        "id",
        "name",
        "kind",
        "trust",
        "classification",
        "legal_basis",
        "retention_days",
        "clearance",
        "may_lower_classification",
    }
    if unknown:
        raise AgencyRegistryError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    try:
        agency_id = validate_agency_id(entry.get("id", ""))
    except InvalidAgencyIdError as error:
        raise AgencyRegistryError(f"{where}: {error}") from None
    where = f"{where} ('{agency_id}')"
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise AgencyRegistryError(f"{where} has no name")
    kind = str(entry.get("kind", "")).lower()
    if kind not in AGENCY_KINDS:
        raise AgencyRegistryError(
            f"{where}: kind '{entry.get('kind')}' is not one of {', '.join(AGENCY_KINDS)}"
        )
    classification = str(entry.get("classification", Classification.SENSITIVE.value))
    if classification not in Classification.symbols():
        raise AgencyRegistryError(
            f"{where}: classification '{classification}' is not one of "
            f"{', '.join(Classification.symbols())}"
        )
    clearance = str(entry.get("clearance", classification))
    if clearance not in Classification.symbols():
        raise AgencyRegistryError(
            f"{where}: clearance '{clearance}' is not one of "
            f"{', '.join(Classification.symbols())}"
        )
    legal_basis = str(entry.get("legal_basis", LegalBasis.PUBLIC_FUNCTION.value))
    if legal_basis not in LegalBasis.symbols():
        raise AgencyRegistryError(
            f"{where}: legal_basis '{legal_basis}' is not one of {', '.join(LegalBasis.symbols())}"
        )
    retention = entry.get("retention_days")
    if retention is not None and (not isinstance(retention, int) or retention <= 0):
        raise AgencyRegistryError(f"{where}: retention_days must be a positive whole number")
    lower = entry.get("may_lower_classification", False)
    if not isinstance(lower, bool):
        raise AgencyRegistryError(f"{where}: may_lower_classification must be true or false")
    return Agency(
        id=agency_id,
        name=name.strip(),
        kind=kind,
        trust=_parse_trust(entry.get("trust"), where),
        classification=classification,
        legal_basis=legal_basis,
        retention_days=retention,
        clearance=clearance,
        may_lower_classification=lower,
    )


def _parse_trust(trust: Any, where: str) -> dict[str, int]:
    if not isinstance(trust, Mapping) or "default" not in trust:
        raise AgencyRegistryError(
            f"{where}: trust must be a mapping with a 'default' rank and optional per-group ranks"
        )
    unknown = set(trust) - {"default", *FIELD_GROUPS}
    if unknown:
        raise AgencyRegistryError(
            f"{where}: trust has unknown field groups {', '.join(sorted(unknown))} "
            f"(expected: {', '.join(FIELD_GROUPS)})"
        )
    for group, rank in trust.items():
        if (
            not isinstance(rank, int)
            or isinstance(rank, bool)
            or not TRUST_MIN <= rank <= TRUST_MAX
        ):
            raise AgencyRegistryError(
                f"{where}: trust rank of '{group}' is {rank!r}; expected a whole number "
                f"from {TRUST_MIN} (least trusted) to {TRUST_MAX} (most trusted)"
            )
    return {group: int(trust.get(group, trust["default"])) for group in FIELD_GROUPS}
