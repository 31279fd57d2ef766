"""deploy/operations/agency_activity.py: per agency topic, messages and the last one's time."""

from __future__ import annotations

from deploy.operations.agency_activity import AgencyActivity, families, summarise
from schemas.topics import TopicNames

NAMES = TopicNames("t1")


def test_activity_sums_partitions_and_takes_the_latest_record_time() -> None:
    person, case = NAMES.agency("police-ctu", "person"), NAMES.agency("customs", "case")
    activity = summarise(
        NAMES,
        {(person, 0): 10, (person, 1): 5, (case, 0): 0, (NAMES.resolve, 0): 99},
        {(person, 0): 1_700_000_000_000, (person, 1): 1_700_000_060_500, (case, 0): -1},
    )
    assert activity == [
        AgencyActivity("customs", "case", 0, None),  # empty: no time, and no alert from it
        AgencyActivity("police-ctu", "person", 15, 1_700_000_060.5),
    ]


def test_the_families_carry_agency_and_entity_only() -> None:
    exported = list(families([AgencyActivity("customs", "case", 3, 12.0),
                              AgencyActivity("police-ctu", "person", 0, None)]))
    samples = [(sample.name, sample.labels, sample.value)
               for family in exported for sample in family.samples]  # type: ignore[attr-defined]
    assert ("tipsync_agency_messages_total", {"agency": "customs", "entity": "case"}, 3.0) \
        in samples
    assert ("tipsync_agency_last_message_timestamp_seconds",
            {"agency": "customs", "entity": "case"}, 12.0) in samples
    assert all(set(labels) == {"agency", "entity"} for _, labels, _ in samples)
    assert not any(name.endswith("timestamp_seconds") and labels["agency"] == "police-ctu"
                   for name, labels, _ in samples)
