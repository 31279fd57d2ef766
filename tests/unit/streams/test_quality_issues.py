"""Data-quality issues and the text of an invalid date of birth through the streams: the
resolver uses the text as weaker evidence, and the issues reach every golden record's
sources (issue 13 item 3). All people here are invented."""

from __future__ import annotations

from typing import Any

from schemas.examples import example_event
from streams.ingest import check_event, golden_entity
from streams.resolve import Resolver
from streams.resolve.changes import GoldenPersonUpserted
from streams.resolve.records import person_features, source_record_from_event
from streams.resolve.scoring import (
    ScoringModel,
    comparison_levels,
    match_weight_reaching,
    score_pair,
)
from tests.unit.streams.test_resolver import person

MODEL = ScoringModel()


def features(record_id: str, **fields: Any):  # type: ignore[no-untyped-def]
    event = {"agency_id": "police-ctu", "source_record_id": record_id, "source_version": 1,
             "event_time": 0, "given_name": "Marlon", "family_name": "Whyte", **fields}
    return person_features(source_record_from_event(event))


TYPED = {"date_of_birth": "1943-01-17", "dob_precision": "DAY"}


def test_a_date_typed_one_keystroke_away_from_the_text_scores_above_no_date() -> None:
    """Same name; 1943-01-17 (typed) against 1943-01-77 (the text the agency wrote): more
    evidence than no date at all, less than an equal typed date."""
    typed = features("A", **TYPED)
    text = features("B", date_of_birth_text="1943-01-77")
    undated = features("C")
    assert comparison_levels(typed, text)["date_of_birth_text"] == "one_edit"
    with_text = score_pair(MODEL, typed, text).score
    without_date = score_pair(MODEL, typed, undated).score
    equal_typed = score_pair(MODEL, typed, features("D", **TYPED)).score
    assert without_date < with_text < equal_typed
    assert score_pair(MODEL, text, typed).score == with_text  # symmetric
    # the cheap bound used while indexing gives the same number
    assert match_weight_reaching(MODEL, typed, text, -1000) == with_text


def test_two_equal_texts_agree_and_a_far_date_disagrees() -> None:
    text = features("A", date_of_birth_text="1950-19-05")
    assert comparison_levels(text, features("B", date_of_birth_text="1950-19-05"))[
        "date_of_birth_text"] == "exact"
    # a day/month swap of the text is the real date 1950-05-19
    swapped = features("C", date_of_birth="1950-05-19", dob_precision="DAY")
    assert comparison_levels(text, swapped)["date_of_birth_text"] == "one_edit"
    far = features("D", date_of_birth="1971-08-30", dob_precision="DAY")
    assert comparison_levels(text, far)["date_of_birth_text"] == "different"
    assert score_pair(MODEL, text, far).score < score_pair(MODEL, text, features("E")).score


def test_the_text_is_ignored_next_to_a_typed_date_and_when_it_is_a_placeholder() -> None:
    assert features("A", date_of_birth_text="1943-01-77", **TYPED).date_of_birth_text == ""
    assert features("B", date_of_birth_text="0000-00-00").date_of_birth_text == ""
    assert features("C", date_of_birth_text="1943-01-77").date_of_birth_text == "19430177"
    # a date known to the year only is compared on the text's year
    year = features("D", date_of_birth="1943-01-01", dob_precision="YEAR")
    levels = comparison_levels(year, features("E", date_of_birth_text="1943-01-77"))
    assert levels["date_of_birth_year"] == "exact"


def test_the_golden_person_keeps_each_source_s_issues_and_the_text_when_no_date_survives() -> None:
    resolver = Resolver(trust={})
    flagged = person(
        "health-ministry", "H-1", 0, given_name="Marlon", family_name="Whyte",
        date_of_birth=None, dob_precision=None, date_of_birth_text="1943-01-77",
        quality_issues=[{"field": "date_of_birth", "problem": "impossible_date"}],
    )
    changes = resolver.upsert(flagged)
    (golden,) = [c.value for c in changes if isinstance(c, GoldenPersonUpserted)]
    assert golden["date_of_birth"] is None
    assert golden["date_of_birth_text"] == "1943-01-77"
    assert golden["sources"][0]["quality_issues"] == [
        {"field": "date_of_birth", "problem": "impossible_date"}
    ]
    assert any(entry["field"] == "date_of_birth_text" for entry in golden["lineage"])
    # A clean source has no quality_issues key at all (the Avro default, an empty list).
    clean = person("police-ctu", "P-1", 5, given_name="Marlon", family_name="Whyte",
                   date_of_birth="1943-01-17", identifiers=[])
    for change in resolver.upsert(clean):
        if isinstance(change, GoldenPersonUpserted):
            sources = {s["source_record_id"]: s for s in change.value["sources"]}
            assert "quality_issues" not in sources["P-1"]
            if "H-1" in sources:  # merged: the typed date wins, the text is not repeated
                assert change.value["date_of_birth"] == "1943-01-17"
                assert "date_of_birth_text" not in change.value


def test_a_case_s_issues_reach_its_golden_record_s_source() -> None:
    event = example_event("case", "police-ctu", "C-1")
    event["quality_issues"] = [{"field": "opened_on", "problem": "not_a_date"}]
    key = b"police-ctu:C-1"
    _, value = golden_entity(check_event("police-ctu", "case", key, event))
    assert value is not None
    assert value["sources"][0]["quality_issues"] == [
        {"field": "opened_on", "problem": "not_a_date"}
    ]
    clean = example_event("case", "police-ctu", "C-2")
    _, value = golden_entity(check_event("police-ctu", "case", b"police-ctu:C-2", clean))
    assert value is not None and "quality_issues" not in value["sources"][0]
