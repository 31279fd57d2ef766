"""The resolve stage around the resolver: versions from offsets, links on golden ids, rebuilds,
trust ranks from the agency registry. Nothing running."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.agencies import Agency
from schemas.examples import EXAMPLE_TIME, example_delete, example_event
from streams.ingest import AgencyEvent, check_event, entity_golden_id
from streams.options import StreamOptions
from streams.resolve import Resolver
from streams.resolve.model_file import (
    DEFAULT_MODEL_FILE,
    ModelFile,
    ModelFileError,
    write_model_file,
)
from streams.resolve.scoring import ScoringModel
from streams.resolve.survivorship import GOLDEN_ID_NAMESPACE
from streams.resolve_stage import (
    LINK,
    MAPPING,
    PERSON,
    ResolveStage,
    is_model_change,
    load_model,
    model_change_key,
    trust_ranks,
)

POLICE, IMMIGRATION = "police-ctu", "immigration"


def _checked(entity: str, event: dict[str, Any]) -> AgencyEvent:
    key = f"{event['agency_id']}:{event['source_record_id']}".encode()
    return check_event(event["agency_id"], entity, key, event)


def _person(agency: str, record: str) -> AgencyEvent:
    return _checked("person", example_event("person", agency, record))


def _link(record: str, person_record: str) -> AgencyEvent:
    payload = {**example_event("link")["payload"], "from_record_id": person_record}
    return _checked("link", example_event("link", POLICE, record, payload=payload))


def _stage() -> ResolveStage:
    return ResolveStage(Resolver)


def test_every_output_carries_the_input_offset_as_golden_version() -> None:
    stage = _stage()
    outputs = stage.apply(_person(POLICE, "P-1"), golden_version=41)
    people = [o for o in outputs if o.kind == PERSON]
    assert people and all(o.value and o.value["golden_version"] == 41 for o in people)
    mapping = [o for o in outputs if o.kind == MAPPING]
    assert mapping[0].key == "police-ctu:P-1" and mapping[0].value is not None
    assert mapping[0].value["golden_version"] == 41


def test_a_merge_announces_the_merged_id_with_every_required_field() -> None:
    stage = _stage()
    stage.apply(_person(POLICE, "P-1"), 1)
    stage.apply(_person(IMMIGRATION, "I-1"), 2)
    before = stage.resolver.person_of(IMMIGRATION, "I-1")
    assert before == stage.resolver.person_of(POLICE, "P-1")
    # deleting the anchor record moves the cluster to a new id; the old one is retired
    outputs = stage.apply(_checked("person", example_delete("person", POLICE, "P-1")), 3)
    people = {o.key: o.value for o in outputs if o.kind == PERSON}
    assert stage.resolver.person_of(IMMIGRATION, "I-1") in people
    for value in people.values():
        if value and value.get("merged_into"):
            assert value["classification"] and value["first_seen"] and value["last_updated"]


def test_a_link_to_a_person_carries_the_persons_golden_id() -> None:
    stage = _stage()
    stage.apply(_person(POLICE, "P-1"), 0)
    [output] = stage.apply(_link("L-1", "P-1"), 1)
    assert output.kind == LINK and output.value is not None
    assert output.key == entity_golden_id("link", POLICE, "L-1")
    assert output.value["from_id"] == stage.resolver.person_of(POLICE, "P-1")
    assert output.value["to_id"] == entity_golden_id("case", POLICE, "C-2002")


def test_a_link_to_an_unknown_person_uses_the_id_it_would_have_alone() -> None:
    stage = _stage()
    [output] = stage.apply(_link("L-1", "P-9"), 0)
    assert output.value is not None
    assert output.value["from_id"] == str(uuid.uuid5(GOLDEN_ID_NAMESPACE, "police-ctu:P-9"))


def test_a_link_is_emitted_again_when_its_person_moves_to_another_golden_id() -> None:
    stage = _stage()
    stage.apply(_person(POLICE, "P-1"), 0)
    stage.apply(_link("L-1", "P-1"), 1)
    alone = stage.resolver.person_of(POLICE, "P-1")
    # the same person, seen earlier by immigration: the cluster's id becomes the older one
    earlier = example_event("person", IMMIGRATION, "I-1",
                            event_time=EXAMPLE_TIME - timedelta(days=30))
    outputs = stage.apply(_checked("person", earlier), 2)
    moved = stage.resolver.person_of(POLICE, "P-1")
    assert moved != alone
    [link] = [o for o in outputs if o.kind == LINK]
    assert link.value is not None
    assert (link.value["from_id"], link.value["golden_version"]) == (moved, 2)


def test_a_deleted_link_becomes_a_tombstone() -> None:
    stage = _stage()
    stage.apply(_link("L-1", "P-1"), 0)
    [output] = stage.apply(_checked("link", example_delete("link", POLICE, "L-1")), 1)
    assert (output.kind, output.value) == (LINK, None)
    assert not stage.links and not stage.links_of_person


def test_a_rebuilt_stage_emits_only_what_changes_after_it() -> None:
    events = [_person(POLICE, "P-1"), _person(IMMIGRATION, "I-1"), _link("L-1", "P-1")]
    live = _stage()
    for offset, event in enumerate(events):
        live.apply(event, offset)
    rebuilt = _stage()
    for event in events:
        rebuilt.load(event)
    rebuilt.finish_loading()
    assert rebuilt.resolver.clusters() == live.resolver.clusters()
    again = rebuilt.apply(_person(IMMIGRATION, "I-1"), 3)
    assert again == []  # the same record again: nothing changes


def test_trust_ranks_turn_the_registry_scale_around() -> None:
    agencies = {
        "passport-office": Agency("passport-office", "Passports", "government",
                                  {"names": 6, "identifiers": 10}),
        "hope-line-ngo": Agency("hope-line-ngo", "Hotline", "ngo", {"identifiers": 2}),
    }
    ranks = trust_ranks(agencies)
    assert ranks["passport-office"] == {"name": 5, "identifiers": 1}
    assert ranks["hope-line-ngo"]["identifiers"] > ranks["passport-office"]["identifiers"]


# --------------------------------------------------------------------------- model changes

# No pair reaches these thresholds: every record is a golden person of its own.
STRICT = ModelFile(ScoringModel(match_threshold=1000.0, review_threshold=990.0))


def _strict_stage() -> ResolveStage:
    return ResolveStage(lambda: Resolver(model=STRICT.model))


def test_a_stricter_model_splits_a_cluster_and_emits_only_the_differences() -> None:
    stage = _stage()
    stage.apply(_person(POLICE, "P-1"), 1)
    stage.apply(_person(IMMIGRATION, "I-1"), 2)
    stranger = {
        **example_event("person")["payload"], "given_name": "Odessa", "family_name": "Quartey",
        "aliases": [], "date_of_birth": "1961-03-14", "dob_precision": "DAY", "identifiers": [],
        "phones": [], "emails": [], "addresses": [],
    }
    # a person of their own under both models: must not be re-emitted
    stage.apply(_checked("person", example_event("person", POLICE, "P-2", payload=stranger)), 3)
    [(merged_id, members)] = [(p, m) for p, m in stage.resolver.clusters().items()
                              if len(m) == 2]
    alone_id = stage.resolver.person_of(POLICE, "P-2")
    outputs = stage.apply_model_change(STRICT, golden_version=4)
    assert all(o.value is not None and o.value["golden_version"] == 4 for o in outputs)
    people = {o.key: o.value for o in outputs if o.kind == PERSON}
    moved = [o.key for o in outputs if o.kind == MAPPING]
    assert len(moved) == 1 and moved[0] in members
    split_id = stage.resolver.person_of(*moved[0].split(":", 1))
    assert set(people) == {merged_id, split_id} and alone_id not in people
    assert all(len(value["sources"]) == 1 for value in people.values() if value)
    fresh = Resolver(model=STRICT.model)
    for key in sorted(stage.resolver.records):
        fresh.upsert(stage.resolver.records[key])
    assert stage.resolver.clusters() == fresh.clusters()
    assert stage.model_fingerprint == STRICT.fingerprint


def test_a_looser_model_merges_clusters_and_retires_the_younger_id_into_the_survivor() -> None:
    stage = _strict_stage()
    stage.apply(_person(POLICE, "P-1"), 1)
    stage.apply(_person(IMMIGRATION, "I-1"), 2)
    before = stage.resolver.clusters()
    assert len(before) == 2
    outputs = stage.apply_model_change(DEFAULT_MODEL_FILE, golden_version=3)
    [(survivor, _members)] = stage.resolver.clusters().items()
    people = {o.key: o.value for o in outputs if o.kind == PERSON}
    [retired] = set(before) - {survivor}
    assert people[retired] is not None and people[retired]["merged_into"] == survivor
    assert people[retired]["first_seen"] and people[retired]["classification"]
    assert people[survivor] is not None and len(people[survivor]["sources"]) == 2
    assert len([o for o in outputs if o.kind == MAPPING]) == 1
    # the resolver's bookkeeping follows: a split later brings the retired id back to life
    back = stage.apply_model_change(STRICT, golden_version=4)
    revived = {o.key: o.value for o in back if o.kind == PERSON}
    assert revived[retired] is not None and not revived[retired].get("merged_into")


def test_the_same_model_again_changes_nothing() -> None:
    stage = _stage()
    stage.apply(_person(POLICE, "P-1"), 1)
    assert stage.apply_model_change(DEFAULT_MODEL_FILE, golden_version=2) == []


def test_a_link_is_emitted_again_when_a_model_change_moves_its_person() -> None:
    stage = _stage()
    stage.apply(_person(POLICE, "P-1"), 1)
    stage.apply(_person(IMMIGRATION, "I-1"), 2)
    stage.apply(_link("L-1", "P-1"), 3)
    outputs = stage.apply_model_change(STRICT, golden_version=4)
    links = [o for o in outputs if o.kind == LINK]
    now = stage.resolver.person_of(POLICE, "P-1")
    if any(o.key == "police-ctu:P-1" for o in outputs if o.kind == MAPPING):
        assert [link.value["from_id"] for link in links if link.value] == [now]
    else:
        assert links == []


def test_a_marker_met_while_rebuilding_switches_the_model_silently() -> None:
    events = [_person(POLICE, "P-1"), _person(IMMIGRATION, "I-1")]
    rebuilt = _stage()
    rebuilt.load(events[0])
    rebuilt.load_model_change(STRICT)
    rebuilt.load(events[1])
    rebuilt.finish_loading()
    live = _strict_stage()
    for offset, event in enumerate(events):
        live.apply(event, offset)
    assert rebuilt.resolver.clusters() == live.resolver.clusters()
    assert rebuilt.model_fingerprint == STRICT.fingerprint


def test_the_worker_takes_its_model_file_from_the_environment_or_the_option(
    tmp_path: Path,
) -> None:
    path = tmp_path / "model.json"
    write_model_file(path, STRICT)
    options = StreamOptions.from_environment({"TIPSYNC_RESOLVE_MODEL": str(path)})
    assert options.model_path == str(path)
    assert load_model(options.model_path).fingerprint == STRICT.fingerprint
    assert StreamOptions.from_environment({}, model_path=None).model_path is None
    assert load_model(None) is DEFAULT_MODEL_FILE


def test_a_bad_model_file_stops_the_worker_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text('{"format": "tipsync.scoring-model", "version": 1}')
    with pytest.raises(ModelFileError, match=r"model file .*model\.json: "):
        load_model(str(path))


def test_model_change_markers_have_keys_no_record_can_have() -> None:
    assert is_model_change(model_change_key(STRICT).encode())
    assert not is_model_change(b"person:police-ctu:P-1")
    assert not is_model_change(None)
