"""An agency's classification is the floor of its events' labels (issue 15): a lower label
is raised at ingest, kept where the registry allows lowering it, and flagged, never dropped."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas.agencies import Agency
from streams.ingest import BELOW_AGENCY_LABEL, check_event

NOW_MS = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
POLICE = Agency("police-ctu", "Police", "government", classification="SENSITIVE")
LENIENT = Agency("shelter", "Shelter", "ngo", classification="SENSITIVE",
                 may_lower_classification=True)


def _record(agency: str, label: str) -> dict[str, Any]:
    return {
        "event_id": "e-1", "agency_id": agency, "source_record_id": "P-1", "op": "UPSERT",
        "source_version": 1, "event_time": datetime(2026, 11, 30, tzinfo=UTC),
        "classification": label, "quality_issues": [], "payload": {"given_name": "A"},
    }


def test_a_label_below_the_agency_floor_is_raised_and_flagged() -> None:
    event = check_event("police-ctu", "person", b"police-ctu:P-1",
                        _record("police-ctu", "OFFICIAL"), NOW_MS, agency=POLICE)
    assert event.record["classification"] == "SENSITIVE"
    assert event.record["quality_issues"] == [
        {"field": "classification", "problem": BELOW_AGENCY_LABEL}
    ]
    assert event.record["payload"] == {"given_name": "A"}  # the record is kept whole


def test_a_label_at_or_above_the_floor_is_kept() -> None:
    for label in ("SENSITIVE", "VICTIM_PROTECTED"):
        event = check_event("police-ctu", "person", b"police-ctu:P-1",
                            _record("police-ctu", label), NOW_MS, agency=POLICE)
        assert event.record["classification"] == label
        assert event.record["quality_issues"] == []


def test_the_registry_may_allow_lowering() -> None:
    event = check_event("shelter", "person", b"shelter:P-1", _record("shelter", "OFFICIAL"),
                        NOW_MS, agency=LENIENT)
    assert event.record["classification"] == "OFFICIAL"
    assert event.record["quality_issues"] == []


def test_a_missing_label_reads_as_the_most_protected() -> None:
    assert POLICE.permits_label(None)
    assert not POLICE.permits_label("OFFICIAL")
