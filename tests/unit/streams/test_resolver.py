"""The incremental resolver: golden people, stable ids, merges, splits, order independence.

All people here are synthetic.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.resolve import (
    GoldenPersonMerged,
    GoldenPersonRemoved,
    GoldenPersonUpserted,
    MatchDecision,
    Resolver,
    SourceMapped,
    golden_id,
)

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TRUST = {
    "police-ctu": {"name": 1, "date_of_birth": 2, "identifiers": 1, "default": 2},
    "immigration": {"name": 2, "date_of_birth": 1, "identifiers": 1, "default": 1},
    "hope-line-ngo": {"default": 5},
}


def person(agency: str, record_id: str, minutes: int = 0, version: int = 1,
           **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "agency_id": agency, "source_record_id": record_id, "source_version": version,
        "event_time": T0 + timedelta(minutes=minutes), "given_name": None,
        "middle_name": None, "family_name": None, "aliases": [], "date_of_birth": None,
        "dob_precision": "DAY", "sex": "UNKNOWN", "citizenship": [], "identifiers": [],
        "phones": [], "emails": [], "addresses": [], "classification": "OFFICIAL",
    }
    base.update(fields)
    return base


def trn(value: str) -> list[dict[str, str]]:
    return [{"scheme": "TRN", "value": value, "issuing_country": "JM"}]


def upserted(changes: list[Any]) -> dict[str, GoldenPersonUpserted]:
    return {c.person_id: c for c in changes if isinstance(c, GoldenPersonUpserted)}


def key_sets(resolver: Resolver) -> set[frozenset[str]]:
    return {frozenset(members) for members in resolver.clusters().values()}


# Three agencies describe one woman: police with her TRN, immigration with a typo in the
# family name and her passport-era nickname, the hotline with no identifier at all.
KERRY_POLICE = person(
    "police-ctu", "P-100", 0, given_name="Katherine", family_name="Campbell",
    date_of_birth="1994-07-12", sex="FEMALE", identifiers=trn("123456789"),
    phones=["+18765550101"], classification="SENSITIVE",
)
KERRY_IMMIGRATION = person(
    "immigration", "IMM-7", 5, given_name="Kathy", family_name="Cambell",
    date_of_birth="1994-07-12", sex="FEMALE", identifiers=trn("123456789"),
    citizenship=["JM"], emails=["kcampbell@example.org"],
)
KERRY_HOTLINE = person(
    "hope-line-ngo", "H-3", 9, given_name="Kathy", family_name="Campbel",
    date_of_birth="1994-07-12", phones=["+1 876 555 0101"],
    classification="VICTIM_PROTECTED",
)
OTHER_WOMAN = person(
    "police-ctu", "P-200", 1, given_name="Shanice", family_name="Morgan",
    date_of_birth="1990-02-03", sex="FEMALE", identifiers=trn("987654321"),
)


def test_same_person_from_three_agencies_with_typos_nickname_and_missing_identifier_is_one():
    resolver = Resolver(TRUST)
    for record in (KERRY_POLICE, OTHER_WOMAN, KERRY_IMMIGRATION, KERRY_HOTLINE):
        resolver.upsert(record)

    assert key_sets(resolver) == {
        frozenset({"police-ctu:P-100", "immigration:IMM-7", "hope-line-ngo:H-3"}),
        frozenset({"police-ctu:P-200"}),
    }
    person_id = resolver.person_of("police-ctu", "P-100")
    golden = resolver.golden(person_id)
    assert golden is not None
    # Police is most trusted for names, immigration for the date of birth.
    assert (golden["given_name"], golden["family_name"]) == ("Katherine", "Campbell")
    assert {"Kathy Cambell", "Kathy Campbel"} <= set(golden["aliases"])
    assert golden["identifiers"] == trn("123456789")
    assert golden["emails"] == ["kcampbell@example.org"]
    assert golden["classification"] == "VICTIM_PROTECTED"  # the most protective label wins
    lineage = {(entry["field"], entry["agency_id"]) for entry in golden["lineage"]}
    assert ("given_name", "police-ctu") in lineage
    assert ("date_of_birth", "immigration") in lineage
    assert ("emails", "immigration") in lineage
    assert {s["agency_id"] for s in golden["sources"]} == {
        "police-ctu", "immigration", "hope-line-ngo"
    }
    # The earliest record anchors the id.
    assert person_id == golden_id([resolver.records["police-ctu:P-100"]])


def test_match_decisions_explain_the_score_field_by_field():
    resolver = Resolver(TRUST)
    resolver.upsert(KERRY_POLICE)
    changes = resolver.upsert(KERRY_IMMIGRATION)
    decisions = [c for c in changes if isinstance(c, MatchDecision)]
    assert len(decisions) == 1
    decision = decisions[0]
    assert decision.decision == "MATCH"
    assert decision.rule == "fellegi_sunter:identifier"
    assert decision.features["identifier"] > 15
    assert decision.features["given_name"] > 0  # Kathy is Katherine's nickname
    assert abs(sum(decision.features.values()) - decision.score) < 1e-6


def test_a_record_bridging_two_clusters_merges_them_and_the_older_id_survives():
    resolver = Resolver(TRUST)
    # Same person, but the two records share nothing strong enough to match alone.
    first = person("police-ctu", "P-1", 0, given_name="Andre", family_name="Williams",
                   date_of_birth="1988-11-30", phones=["+18765550199"])
    second = person("immigration", "I-9", 10, given_name="Andre", family_name="Willaims",
                    identifiers=trn("555666777"), emails=["andre.w@example.org"])
    resolver.upsert(first)
    resolver.upsert(second)
    older = resolver.person_of("police-ctu", "P-1")
    younger = resolver.person_of("immigration", "I-9")
    assert older != younger

    bridge = person("hope-line-ngo", "H-5", 20, given_name="Andre", family_name="Williams",
                    date_of_birth="1988-11-30", phones=["+18765550199"],
                    identifiers=trn("555666777"), emails=["andre.w@example.org"])
    changes = resolver.upsert(bridge)

    assert {resolver.person_of(*key.split(":", 1)) for key in
            ("police-ctu:P-1", "immigration:I-9", "hope-line-ngo:H-5")} == {older}
    merged = [c for c in changes if isinstance(c, GoldenPersonMerged)]
    assert [(m.person_id, m.merged_into) for m in merged] == [(younger, older)]
    assert older in upserted(changes)
    assert merged[0].value["merged_into"] == older
    assert merged[0].golden_version == 2


def test_an_update_that_no_longer_matches_is_split_off_and_the_rest_keeps_its_id():
    resolver = Resolver(TRUST)
    resolver.upsert(KERRY_POLICE)
    resolver.upsert(KERRY_IMMIGRATION)
    resolver.upsert(KERRY_HOTLINE)
    person_id = resolver.person_of("police-ctu", "P-100")

    # The hotline corrects its record: it was a different caller after all.
    corrected = person("hope-line-ngo", "H-3", 30, version=2, given_name="Dwayne",
                       family_name="Brown", date_of_birth="1979-01-05",
                       phones=["+18765550777"])
    changes = resolver.upsert(corrected)

    assert resolver.person_of("police-ctu", "P-100") == person_id
    assert resolver.person_of("immigration", "IMM-7") == person_id
    split_id = resolver.person_of("hope-line-ngo", "H-3")
    assert split_id != person_id
    assert set(upserted(changes)) == {person_id, split_id}
    mapping = [c for c in changes if isinstance(c, SourceMapped)]
    assert [(m.source_record_id, m.person_id) for m in mapping] == [("H-3", split_id)]


def test_delete_rebuilds_the_golden_person_and_the_last_delete_leaves_a_tombstone():
    resolver = Resolver(TRUST)
    resolver.upsert(KERRY_POLICE)
    resolver.upsert(KERRY_IMMIGRATION)
    person_id = resolver.person_of("police-ctu", "P-100")

    changes = resolver.delete("immigration", "IMM-7")
    assert upserted(changes)[person_id].value["sources"][0]["source_record_id"] == "P-100"
    assert len(upserted(changes)[person_id].value["sources"]) == 1
    assert SourceMapped("immigration", "IMM-7", 1, None) in changes

    changes = resolver.delete("police-ctu", "P-100")
    assert GoldenPersonRemoved(person_id) in changes
    assert resolver.clusters() == {}
    assert resolver.delete("police-ctu", "P-100") == []


def test_deleting_the_anchor_record_moves_the_id_and_publishes_where_the_old_one_went():
    resolver = Resolver(TRUST)
    for record in (KERRY_POLICE, KERRY_IMMIGRATION, KERRY_HOTLINE):
        resolver.upsert(record)
    old_id = resolver.person_of("police-ctu", "P-100")
    changes = resolver.delete("police-ctu", "P-100")
    new_id = resolver.person_of("immigration", "IMM-7")
    assert new_id != old_id
    assert [(c.person_id, c.merged_into) for c in changes
            if isinstance(c, GoldenPersonMerged)] == [(old_id, new_id)]


def test_stale_versions_and_replays_change_nothing():
    resolver = Resolver(TRUST)
    resolver.upsert(person("police-ctu", "P-1", 5, version=3, given_name="Tanya",
                           family_name="Reid", date_of_birth="2001-04-04"))
    assert resolver.upsert(person("police-ctu", "P-1", 1, version=2, given_name="Tania",
                                  family_name="Reid", date_of_birth="2001-04-04")) == []
    assert resolver.upsert(person("police-ctu", "P-1", 5, version=3, given_name="Tanya",
                                  family_name="Reid", date_of_birth="2001-04-04")) == []
    assert resolver.records["police-ctu:P-1"]["given_name"] == "Tanya"


def test_the_guard_keeps_a_weak_bridge_from_chaining_two_different_people():
    resolver = Resolver(TRUST)
    # Two different men with the same common name; a third record shares the name with one
    # and the phone of the other.
    first = person("police-ctu", "P-1", 0, given_name="Marlon", family_name="Brown",
                   date_of_birth="1985-05-05", identifiers=trn("111222333"),
                   sex="MALE", addresses=[{"line": "12 Hope Road", "parish": "St. Andrew",
                                           "country": "JM"}])
    second = person("immigration", "I-1", 1, given_name="Marlon", family_name="Brown",
                    date_of_birth="1962-09-17", identifiers=trn("444555666"), sex="MALE",
                    phones=["+18765550123"],
                    addresses=[{"line": "3 Bay Street", "parish": "St. James",
                                "country": "JM"}])
    bridge = person("hope-line-ngo", "H-1", 2, given_name="Marlon", family_name="Brown",
                    date_of_birth="1985-05-05", phones=["+18765550123"])
    for record in (first, second, bridge):
        resolver.upsert(record)
    assert resolver.explain("hope-line-ngo:H-1", "police-ctu:P-1").score >= 20
    assert resolver.explain("hope-line-ngo:H-1", "immigration:I-1").score >= 20
    assert resolver.person_of("police-ctu", "P-1") != resolver.person_of("immigration", "I-1")
    vetoed = [c for c in resolver.upsert({**bridge, "source_version": 2, "aliases": ["M B"]})
              if isinstance(c, MatchDecision) and c.rule.startswith("anti_chaining_guard")]
    assert vetoed and vetoed[0].decision == "NON_MATCH"


def _population() -> list[dict[str, Any]]:
    """A few people, each seen by several agencies with the usual errors, plus look-alikes."""
    records = [KERRY_POLICE, KERRY_IMMIGRATION, KERRY_HOTLINE, OTHER_WOMAN]
    records += [
        person("immigration", "I-200", 3, given_name="Shanice", family_name="Morgan",
               date_of_birth="1990-03-02", identifiers=trn("987654321")),
        person("hope-line-ngo", "H-9", 4, given_name="Shanice", family_name="Morgan",
               date_of_birth="1990-02-03", emails=["shan.m@example.org"]),
        person("police-ctu", "P-300", 2, given_name="Andre", family_name="Williams",
               date_of_birth="1988-11-30", phones=["+18765550199"]),
        person("immigration", "I-300", 6, given_name="Andre", family_name="Willaims",
               identifiers=trn("555666777"), emails=["andre.w@example.org"]),
        person("hope-line-ngo", "H-300", 7, given_name="Andre", family_name="Williams",
               date_of_birth="1988-11-30", phones=["+18765550199"],
               identifiers=trn("555666777")),
        person("police-ctu", "P-400", 8, given_name="Andrea", family_name="Williams",
               date_of_birth="1991-01-13", sex="FEMALE"),
    ]
    return records


def _view(resolver: Resolver) -> dict[str, Any]:
    view = {}
    for person_id in resolver.clusters():
        golden = resolver.golden(person_id)
        assert golden is not None
        golden.pop("golden_version")
        view[person_id] = json.loads(json.dumps(golden, default=str))
    return view


def test_shuffled_replay_gives_the_same_clusters_ids_and_golden_records():
    records = _population()
    reference = Resolver(TRUST)
    for record in records:
        reference.upsert(record)
    expected_view = _view(reference)
    assert len(expected_view) == 4
    for seed in range(8):
        shuffled = records[:]
        random.Random(seed).shuffle(shuffled)
        resolver = Resolver(TRUST)
        for record in shuffled:
            resolver.upsert(record)
        assert resolver.clusters() == reference.clusters()
        assert _view(resolver) == expected_view


def test_state_round_trips_through_json_and_resolving_goes_on():
    resolver = Resolver(TRUST, clock=lambda: T0)
    for record in _population()[:6]:
        resolver.upsert(record)
    state = json.loads(json.dumps(resolver.to_state()))
    restored = Resolver.from_state(state, trust=TRUST, clock=lambda: T0)
    assert restored.clusters() == resolver.clusters()
    for record in _population()[6:]:
        assert restored.upsert(record) == resolver.upsert(record)
    assert restored.clusters() == resolver.clusters()
    assert restored.published == resolver.published


def test_a_common_block_past_the_cap_gives_no_candidates_but_the_result_is_order_free():
    # Ten namesakes with the same name and birthday but different identifiers: their shared
    # blocks pass a cap of 4, so only what else they share decides, in any order.
    records = [
        person("police-ctu", f"P-{n}", n, given_name="John", family_name="Smith",
               date_of_birth="1980-01-01", identifiers=trn(f"{n:09d}"))
        for n in range(10)
    ]
    records.append(person("immigration", "I-3", 20, given_name="Jon", family_name="Smith",
                          identifiers=trn(f"{3:09d}")))
    outcomes = set()
    for seed in range(4):
        shuffled = records[:]
        random.Random(seed).shuffle(shuffled)
        resolver = Resolver(TRUST, block_size_cap=4)
        for record in shuffled:
            resolver.upsert(record)
        outcomes.add(frozenset(frozenset(m) for m in resolver.clusters().values()))
        assert resolver.person_of("immigration", "I-3") == resolver.person_of("police-ctu", "P-3")
    assert len(outcomes) == 1


def test_updating_a_member_of_a_block_one_over_its_cap_scores_only_its_own_candidates():
    # Six strangers born the same day: a weak block (date of birth) at its cap + 1 (20 // 4
    # = 5). Taking a member out of it and back in at its update used to score every pair of
    # the block and then drop them again, at each update of any of them.
    records = [
        person("police-ctu", f"P-{n}", n, given_name=given, family_name=family,
               date_of_birth="1984-03-09", identifiers=trn(f"{n:09d}"))
        for n, (given, family) in enumerate([
            ("Andre", "Reid"), ("Keisha", "Morgan"), ("Omar", "Grant"),
            ("Simone", "Clarke"), ("Damion", "Henry"), ("Nadine", "Francis"),
        ])
    ]
    resolver = Resolver(TRUST, block_size_cap=20)
    for record in records:
        resolver.upsert(record)
    changed = dict(records[2], source_version=2, emails=["omar.grant@example.org"])
    candidates = resolver.candidate_keys("police-ctu:P-2")
    before = resolver.pairs_scored
    resolver.upsert(changed)
    assert resolver.pairs_scored - before <= len(candidates)

    # and it leaves what resolving the final records from scratch leaves
    fresh = Resolver(TRUST, block_size_cap=20)
    for record in [*records[:2], changed, *records[3:]]:
        fresh.upsert(record)
    assert key_sets(resolver) == key_sets(fresh)

    def edges(state: dict[str, Any]) -> dict[str, set[tuple[str, float]]]:
        return {key: {tuple(edge) for edge in found} for key, found in state["edges"].items()}

    assert edges(resolver.to_state()) == edges(fresh.to_state())


def test_contact_updates_skip_pairs_that_cannot_rise_and_leave_what_a_fresh_resolve_leaves(
        monkeypatch: Any):
    # Namesakes sharing a few mailboxes, phones and citizenships, so that updates both gain
    # and lose shared contacts: a gained one must be scored (the pair may now match), a lost
    # or unrelated one need not.
    rng = random.Random(18)
    mailboxes = [f"box{n}@example.org" for n in range(6)]
    phones = [f"+1876555{n:04d}" for n in range(6)]
    pools = {"emails": mailboxes, "phones": phones, "citizenship": ["JM", "HT", "VE"]}
    records = {}
    for n in range(40):
        given, family = rng.choice([("Andre", "Reid"), ("Andrea", "Reid"), ("Omar", "Grant"),
                                    ("Keisha", "Morgan"), ("Simone", "Clarke")])
        records[n] = person(
            rng.choice(["police-ctu", "immigration"]), f"R-{n}", n, given_name=given,
            family_name=family, date_of_birth=f"198{rng.randrange(3)}-03-0{rng.randrange(1, 3)}",
            **{name: rng.sample(pool, rng.randrange(2)) for name, pool in pools.items()},
        )
    updates = []
    for _ in range(200):
        n = rng.randrange(len(records))
        name = rng.choice(list(pools))
        records[n] = dict(records[n], source_version=records[n]["source_version"] + 1,
                          **{name: rng.sample(pools[name], rng.randrange(3))})
        updates.append(records[n])

    def resolve_updates() -> tuple[Resolver, int]:
        resolver = Resolver(TRUST)
        for record in records.values():
            resolver.upsert(dict(record, source_version=0))
        loaded = resolver.pairs_scored
        for record in updates:
            resolver.upsert(record)
        return resolver, resolver.pairs_scored - loaded

    resolver, scored = resolve_updates()
    fresh = Resolver(TRUST)
    for record in records.values():
        fresh.upsert(record)
    assert key_sets(resolver) == key_sets(fresh)

    def edges(state: dict[str, Any]) -> dict[str, set[tuple[str, float]]]:
        return {key: {tuple(edge) for edge in found} for key, found in state["edges"].items()}

    assert edges(resolver.to_state()) == edges(fresh.to_state())
    # and every update scoring all its candidates again scores more
    monkeypatch.setattr("streams.resolve.edges.set_field_changes", lambda old, new: None)
    rescored, scored_in_full = resolve_updates()
    assert edges(rescored.to_state()) == edges(resolver.to_state())
    assert scored < scored_in_full * 0.8, (scored, scored_in_full)
