"""Synthetic example records of every schema, for tests, benchmarks and documentation.

Every name, number and identifier here is invented: no real person is described. Phone
numbers use Jamaica's 876 area code with the 555-01xx range reserved for fiction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from schemas.entities import ENTITIES

EXAMPLE_TIME = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)
EXAMPLE_NAMESPACE = uuid.UUID("7d0f6a52-3c1e-4d8b-9a51-0c1b2e3f4a5b")


def example_uuid(label: str) -> str:
    """A stable UUID per label, so examples are reproducible."""
    return str(uuid.uuid5(EXAMPLE_NAMESPACE, label))


def example_envelope(entity: str, agency_id: str = "police-ctu", record: str = "R-1001") -> dict:
    return {
        "event_id": example_uuid(f"{agency_id}:{entity}:{record}:event"),
        "agency_id": agency_id,
        "source_record_id": record,
        "op": "UPSERT",
        "source_version": 3,
        "event_time": EXAMPLE_TIME,
        "produced_at": EXAMPLE_TIME,
        "classification": "SENSITIVE",
        "legal_basis": "ADMINISTRATION_OF_JUSTICE",
        "consent_ref": None,
        "retention_until": date(2036, 3, 14),
        "quality_issues": [],
    }


EXAMPLE_PAYLOADS: dict[str, dict[str, Any]] = {
    "person": {
        "given_name": "Tamika",
        "middle_name": "Joy",
        "family_name": "Fictiona",
        "aliases": ["TJ", "Tami Example"],
        "date_of_birth": "1998-07-01",
        "dob_precision": "MONTH",
        "date_of_birth_text": None,
        "sex": "FEMALE",
        "citizenship": ["JM"],
        "identifiers": [
            {"scheme": "TRN", "value": "100200300", "issuing_country": "JM"},
            {"scheme": "PASSPORT", "value": "A0000001", "issuing_country": "JM"},
        ],
        "phones": ["+18765550101"],
        "emails": ["tamika.fictiona@example.org"],
        "addresses": [
            {"line": "12 Example Lane, Half Way Tree", "parish": "ST_ANDREW", "country": "JM"}
        ],
    },
    "case": {
        "case_ref": "CTU-2026-0042",
        "title": "Example labour exploitation case",
        "status": "UNDER_INVESTIGATION",
        "opened_on": date(2026, 1, 5),
        "closed_on": None,
        "forms_of_exploitation": ["LABOUR", "DOMESTIC_SERVITUDE"],
        "parish": "ST_JAMES",
        "summary": "Synthetic summary for tests.",
    },
    "report": {
        "channel": "HOTLINE",
        "received_at": EXAMPLE_TIME,
        "narrative": "Synthetic tip about a fictional workplace.",
        "parish": "WESTMORELAND",
        "case_ref": None,
    },
    "organisation": {
        "name": "Example Farms Limited",
        "aliases": ["Example Farms"],
        "registration_number": "EX-000123",
        "org_type": "COMPANY",
        "industry": "A_AgricultureForestryAndFishing",
        "addresses": [{"line": "Example Road", "parish": "ST_ELIZABETH", "country": "JM"}],
        "phones": ["+18765550102"],
        "emails": ["office@example.com"],
    },
    "location": {
        "name": "Example wharf",
        "address": "Example Wharf Road",
        "parish": "KINGSTON",
        "country": "JM",
        "latitude": 17.9683,
        "longitude": -76.7827,
        "location_role": "TRANSIT",
    },
    "link": {
        "from_entity": "PERSON",
        "from_record_id": "R-1001",
        "to_entity": "CASE",
        "to_record_id": "C-2002",
        "link_role": "VICTIM",
        "valid_from": date(2026, 1, 5),
        "valid_to": None,
    },
}


def example_event(
    entity: str, agency_id: str = "police-ctu", record: str = "R-1001", **envelope: Any
) -> dict[str, Any]:
    """A valid UPSERT event of ``entity`` (a fresh dict; change it freely)."""
    event = example_envelope(entity, agency_id, record)
    event["payload"] = _copy(EXAMPLE_PAYLOADS[entity])
    event.update(envelope)
    return event


def example_delete(entity: str, agency_id: str = "police-ctu", record: str = "R-1001") -> dict:
    event = example_envelope(entity, agency_id, record)
    event.update(op="DELETE", source_version=4, payload=None)
    return event


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _source(
    agency_id: str, record: str, quality_issues: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    return {
        "agency_id": agency_id,
        "source_record_id": record,
        "source_version": 3,
        "event_time": EXAMPLE_TIME,
        "deleted": False,
        "quality_issues": quality_issues or [],
        "retention_until": date(2036, 3, 14),
        "legal_basis": "ADMINISTRATION_OF_JUSTICE",
        "consent_ref": None,
    }


def example_reconciled(output: str) -> dict[str, Any]:
    """A valid reconciled record of ``output`` (an entity or ``match_decision``)."""
    if output == "match_decision":
        return {
            "left": {"agency_id": "police-ctu", "source_record_id": "R-1001"},
            "right": {"agency_id": "immigration", "source_record_id": "IMM-77"},
            "score": 0.93,
            "features": {"trn": 1.0, "family_name": 0.9, "date_of_birth": 0.6},
            "rule": "trn-exact-v1",
            "decision": "MATCH",
            "decided_at": EXAMPLE_TIME,
        }
    golden: dict[str, Any] = {
        "golden_version": 2,
        "classification": "SENSITIVE",
        "sources": [
            _source("police-ctu", "R-1001", [{"field": "phone", "problem": "not_e164"}]),
            _source("immigration", "IMM-77"),
        ],
    }
    if output == "link":
        golden.update(
            link_id=example_uuid("link"),
            from_entity="PERSON",
            from_id=example_uuid("person"),
            to_entity="CASE",
            to_id=example_uuid("case"),
            link_role="VICTIM",
            valid_from=date(2026, 1, 5),
            valid_to=None,
        )
        return golden
    golden[f"{output}_id"] = example_uuid(output)
    golden.update(_copy(EXAMPLE_PAYLOADS[output]))
    if output == "person":
        golden.update(
            merged_into=None,
            first_seen=EXAMPLE_TIME,
            last_updated=EXAMPLE_TIME,
            lineage=[
                {
                    "field": "date_of_birth",
                    "agency_id": "immigration",
                    "source_record_id": "IMM-77",
                    "source_version": 3,
                    "event_time": EXAMPLE_TIME,
                }
            ],
        )
    return golden


assert set(EXAMPLE_PAYLOADS) == set(ENTITIES)
