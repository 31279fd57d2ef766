"""Issue 16's matrix: stewards' decisions honoured through everything, on the real stack.

One stream worker (the ``stream`` principal, granted for this test's topic root as ``stack up``
grants it for ``tip``) and ``tipsync review decide`` (the ``steward`` principal) over three
small groups of synthetic people:

- **must-link**: M-1 and M-2 score 19 (a REVIEW pair, below the match threshold 20): the
  resolver keeps them apart until a steward says ``--same``;
- **cannot-link over a chain**: C-A ~ C-C (same passport, 48) and C-C ~ C-B (same phone, 22)
  merge the three, although C-A and C-B alone score 6: ``--different C-A C-B`` must separate
  them (the bridge C-C stays with C-A, its stronger pair; the golden id stays with C-A, the
  cluster's anchor, on the larger side; C-B gets an id of its own);
- **conflict**: X-1 and X-2 are cannot-linked, X-1 and X-3 must-linked; ``--same X-3 X-2``
  would make X-1 and X-2 one person: refused by the command; published anyway (two stewards
  racing), the resolver refuses it too and records why.

Then each stage of ``STAGES`` in turn (a SIGKILL and restart; a rebuild from the topic with
the state folder gone; a restart from a snapshot that holds the decisions; a model change;
new versions of the records that would re-link them), each followed by updates of the decided
records (so the rebuilt resolver has to cluster them again) and the same checks. All people
are synthetic."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from deploy.bench.stream_harness import ROOT, StreamHarness
from deploy.stack.acls import KafkaAccess, service_grants
from deploy.stack.principals import STEWARD, STREAM
from deploy.stewardship.review import publish_decision, read_decisions
from schemas import config
from schemas.config import Settings
from schemas.examples import example_event, example_uuid
from schemas.stewardship import pair_key, steward_decision
from streams.resolve import Resolver
from streams.resolve.model_file import ModelFile, write_model_file
from streams.resolve.scoring import ScoringModel
from streams.resolve.survivorship import person_golden_id
from tests.integration.kafka_tools import java_client_config, kafka_tool
from tests.integration.steward_login import StewardLogin, make_steward_login

T0 = datetime(2026, 3, 1, tzinfo=UTC)
M1, M2 = "police-ctu:M-1", "immigration:M-2"
CA, CC, CB = "police-ctu:C-A", "immigration:C-C", "police-ctu:C-B"
X1, X2, X3 = "police-ctu:X-1", "immigration:X-2", "police-ctu:X-3"
X9 = "police-ctu:X-9"  # never published
PASSPORT = [{"scheme": "PASSPORT", "value": "B7700001", "issuing_country": "JM"}]
PEOPLE: dict[str, dict[str, Any]] = {  # source key -> (minutes after T0, payload)
    M1: {"at": 0, "given_name": "Andrea", "family_name": "Samplewood",
         "date_of_birth": "1991-04-12", "phones": ["+18765550201"]},
    M2: {"at": 5, "given_name": "Andria", "family_name": "Samplewood",
         "date_of_birth": "1991-12-04"},
    CA: {"at": 0, "given_name": "Keisha", "family_name": "Brownfield",
         "date_of_birth": "1985-06-10", "identifiers": PASSPORT},
    CC: {"at": 5, "given_name": "Keisha", "family_name": "Brownfield",
         "date_of_birth": "1985-06-10", "identifiers": PASSPORT, "phones": ["+18765550301"]},
    CB: {"at": 10, "given_name": "Keesha", "family_name": "Brownfeld",
         "phones": ["+18765550301"]},
    X1: {"at": 0, "given_name": "Orville", "family_name": "Testerman",
         "date_of_birth": "1970-01-20"},
    X2: {"at": 5, "given_name": "Winsome", "family_name": "Placeholder",
         "date_of_birth": "1982-09-30"},
    X3: {"at": 10, "given_name": "Desmond", "family_name": "Fakename",
         "date_of_birth": "1964-11-02"},
}
# Another model: the decided pairs stay non-trivial under it (M-1 ~ M-2 still below the
# match threshold, the chain still merging), checked in-process before it is used.
CHANGED_MODEL = ModelFile(ScoringModel(match_threshold=21.0, review_threshold=12.5))
SNAPSHOT_EVERY_RECORD = {config.RESOLVE_SNAPSHOT_RECORDS: "1"}
NO_SNAPSHOTS = {config.RESOLVE_SNAPSHOT_RECORDS: "0"}
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
TIMEOUT = 180


def _event(key: str, version: int, **changes: Any) -> dict[str, Any]:
    agency, record = key.split(":", 1)
    person = dict(PEOPLE[key])
    minutes = person.pop("at")
    payload: dict[str, Any] = {
        "given_name": None, "middle_name": None, "family_name": None, "aliases": [],
        "date_of_birth": None, "dob_precision": None, "date_of_birth_text": None,
        "sex": "FEMALE", "citizenship": [], "identifiers": [], "phones": [], "emails": [],
        "addresses": [], **person, **changes,
    }
    if payload["date_of_birth"]:
        payload["dob_precision"] = "DAY"
    event = example_event("person", agency, record, source_version=version,
                          event_id=example_uuid(f"matrix:{key}:{version}"),
                          event_time=T0 + timedelta(minutes=minutes, days=version - 1))
    event["payload"] = payload
    return event


@dataclass
class World:
    """The harness, the worker in use, and what the checks compare against."""

    harness: StreamHarness
    models: Path
    versions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PEOPLE, 1))
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)  # since version 1
    bridge_with: str = CA  # the side of the cannot-link C-C belongs to (its stronger pair)
    # faust's and aiokafka's INFO lines: a stall (issue 13) shows its rebalance story
    worker_arguments: tuple[str, ...] = ("--loglevel", "info")
    log_seen: int = 0
    steward: StewardLogin | None = None  # who runs `review decide`

    # ------------------------------------------------------------------ the worker

    def start(self, environment: dict[str, str] | None = None) -> None:
        """Start the worker and wait until faust says it is ready (its partitions assigned,
        tables recovered): a message published while a worker joins may never be handed to
        it, the stall of issue 13 (seen here once: two agency partitions committed one short
        of their end for 3 minutes). Resolve rebuilds at the first message it is handed."""
        self.log_seen = len(self.harness.worker_log())
        self.harness.start_worker(extra=self.worker_arguments, environment={
            config.CLIENT_CONFIG: "", **SNAPSHOT_EVERY_RECORD, **(environment or {})})
        self.harness.wait_for(lambda: "[^---Recovery]: Worker ready" in self.log_since_start(),
                              timeout=TIMEOUT, what="the worker ready")

    def stop(self, kill: bool = False) -> None:
        self.harness.stop_worker(self.harness.workers[-1], kill=kill)

    def log_since_start(self) -> str:
        return self.harness.worker_log()[self.log_seen:]

    def settle(self, what: str) -> None:
        try:
            self.harness.wait_for(self.harness.caught_up, timeout=TIMEOUT, what=what)
        except TimeoutError as error:
            raise TimeoutError(f"{error}; lagging: {self.lagging()}") from None

    def lagging(self) -> dict[str, tuple[int, int]]:
        """topic[partition] -> (committed, end) of the app's inputs not committed to the end
        (what a stalled worker leaves; issue 13)."""
        harness = self.harness
        partitions = [TopicPartition(harness.agency_topic(agency, "person"), partition)
                      for agency in harness.agencies for partition in range(harness.partitions)]
        partitions += [TopicPartition(harness.topics.resolve, 0),
                       TopicPartition(harness.topics.stewardship_decisions, 0)]
        consumer = Consumer(harness.settings.client.librdkafka({"group.id": harness.prefix}))
        try:
            found = {}
            for tp in partitions:
                end = consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
                committed = harness.committed(tp.topic, tp.partition)
                if committed < end:
                    found[f"{tp.topic}[{tp.partition}]"] = (committed, end)
            return found
        finally:
            consumer.close()

    # ------------------------------------------------------------------ inputs

    def publish(self, key: str, **changes: Any) -> None:
        self.versions[key] += 1
        self.changes.setdefault(key, {}).update(changes)
        self.harness.publish("person", _event(key, self.versions[key], **self.changes[key]))

    def touch_decided_records(self, tag: str) -> None:
        """A new version of one record of each decided pair, as close to the other as before
        (a new alias): the resolver clusters them again with what it rebuilt."""
        for key in (M2, CB, X2):
            self.publish(key, aliases=[f"alias {tag}"])
        self.harness.flush()

    def decide(self, kind: str, first: str, second: str,
               reason: str = "checked both files") -> subprocess.CompletedProcess[str]:
        """``tipsync review decide`` as the steward principal (its own local client file),
        by the steward's login."""
        assert self.steward is not None
        return subprocess.run(
            [sys.executable, "-m", "deploy.cli", "review", "decide", f"--{kind}", first, second,
             "--connection", str(self.steward.connection_file), "--reason", reason,
             "--topic-root", self.harness.prefix],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, config.CLIENT_CONFIG: ""},
        )

    # ------------------------------------------------------------------ outputs

    def people(self) -> dict[str, str | None]:
        mapping = self.harness.latest(self.harness.topics.person_mapping)
        return {key: (value or {}).get("person_id") for key, value in mapping.items()}

    def verdicts(self) -> dict[frozenset[str], dict[str, Any]]:
        """The latest match decision of every pair (either order of its records)."""
        found: dict[frozenset[str], dict[str, Any]] = {}
        topic = self.harness.topics.reconciled("match_decision")
        for message in sorted(self.harness.read(topic), key=lambda m: (m.partition, m.offset)):
            value = self.harness.decode(message.value)
            if value is not None:
                ends = frozenset(f"{end['agency_id']}:{end['source_record_id']}"
                                 for end in (value["left"], value["right"]))
                found[ends] = value
        return found


def _honoured(world: World) -> None:
    """Every decision is in effect in what the worker published, and the golden ids follow
    the stable-id rules: a cluster's id is its anchor's (its earliest-seen record)."""
    people = world.people()
    assert people[M1] == people[M2] == person_golden_id(M1), "the must-link is not in effect"
    assert people[CB] != people[CA], "the cannot-link is not in effect"
    # the bridge C-C goes with its stronger pair: C-A's, until C-B takes C-A's facts
    side, other = (CA, CB) if world.bridge_with == CA else (CB, CA)
    assert people[CC] == people[side] != people[other]
    assert people[CA] == person_golden_id(CA), "the chain's golden id left its anchor"
    assert people[CB] == person_golden_id(CB if world.bridge_with == CA else CC)
    assert people[X1] == people[X3] != people[X2], "the conflicting must-link was applied"
    golden = world.harness.latest(world.harness.topics.reconciled("person"))
    live = [{f"{s['agency_id']}:{s['source_record_id']}" for s in value["sources"]}
            for value in golden.values() if value and not value.get("merged_into")]
    assert {M1, M2} in live and {side, CC} in live and {other} in live and {X1, X3} in live
    # where the others went: M-2's own id was merged into M-1's
    assert golden[person_golden_id(M2)]["merged_into"] == person_golden_id(M1)


def _assert_verdicts(world: World) -> None:
    verdicts = world.verdicts()
    same, apart = verdicts[frozenset((M1, M2))], verdicts[frozenset((CA, CB))]
    assert (same["decision"], same["rule"].split(":")[0]) == ("MATCH", "steward_must_link")
    assert (apart["decision"], apart["rule"].split(":")[0]) == (
        "NON_MATCH", "steward_cannot_link")
    refused = verdicts[frozenset((X2, X3))]
    assert refused["decision"] == "NON_MATCH"
    assert refused["rule"].startswith("steward_must_link_refused:")


@pytest.fixture(scope="module")
def world(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    harness = StreamHarness(stack, entities=("person",)).setup()
    grants = [grant for grant in service_grants(harness.topics, harness.agencies)
              if grant.principal in (STREAM, STEWARD)]
    access = KafkaAccess(stack.client)
    access.grant(grants)
    world = World(harness, tmp_path_factory.mktemp("models"))
    try:
        world.steward = make_steward_login(stack, tmp_path_factory.mktemp("steward"))
        for key in PEOPLE:
            harness.publish("person", _event(key, 1))
        harness.flush()
        world.start()
        harness.wait_for(lambda: len(world.people()) == len(PEOPLE), timeout=TIMEOUT,
                         what="every record resolved")
        world.settle("the first view")
        people = world.people()
        assert people[M1] != people[M2] and people[CA] == people[CB] == people[CC]

        for kind, first, second in (("same", M1, M2), ("different", CA, CB),
                                    ("different", X1, X2), ("same", X1, X3)):
            decided = world.decide(kind, first, second)
            assert decided.returncode == 0, decided.stderr
        harness.wait_for(lambda: world.people()[M2] == world.people()[M1]
                         and world.people()[CB] != world.people()[CA]
                         and world.people()[X3] == world.people()[X1],
                         timeout=TIMEOUT, what="the decisions in effect")
        # two stewards racing: a must-link that contradicts the others reaches the topic
        publish_decision(stack, harness.topics, steward_decision(
            X3, X2, "MUST_LINK", "B. Steward", "decided at the same time elsewhere"))
        harness.wait_for(lambda: frozenset((X2, X3)) in world.verdicts(), timeout=TIMEOUT,
                         what="the resolver's verdict on the racing must-link")
        world.settle("the decisions committed")
        yield world
    finally:
        if world.steward is not None:
            world.steward.remove()
        harness.teardown()
        access.admin.delete_acls([AclBindingFilter(
            ResourceType[grant.resource], grant.name, ResourcePatternType[grant.pattern],
            f"User:{grant.principal}", "*", AclOperation[grant.operation],
            AclPermissionType.ALLOW) for grant in grants])


def test_decisions_take_effect_and_the_match_decisions_say_whose_they_are(
    world: World, stack: Settings
) -> None:
    _honoured(world)
    _assert_verdicts(world)
    # the topic is the record of each decision: who, why, when, and the match decision of its
    # effect names it
    held = read_decisions(stack, world.harness.topics)
    same = held[pair_key(M1, M2)]
    assert world.steward is not None
    assert (same["kind"], same["steward"], same["reason"]) == (
        "MUST_LINK", world.steward.name, "checked both files")
    assert world.verdicts()[frozenset((M1, M2))]["rule"] == (
        f"steward_must_link:{same['decision_id']}")


def test_a_contradicting_decision_is_refused_with_the_decisions_it_contradicts(
    world: World,
) -> None:
    topic = world.harness.topics.stewardship_decisions
    before = world.harness.count(topic)
    # X-3 = X-1 (must-link) and X-1 != X-2 (cannot-link): X-3 = X-2 would contradict them
    refused = world.decide("same", X3, X2)
    assert refused.returncode == 3, refused.stderr
    message = refused.stderr
    assert f"{X2} and {X3} are not joined: {X2} and {X1} are different people by decision" \
        in message, message
    assert f"{X2} = {X3} (this decision), {X3} = {X1} (decision " in message, message
    assert f"tipsync review decide --withdraw {X2} {X1}" in message, message
    assert world.harness.count(topic) == before  # nothing published
    # a cannot-link between two records must-links join is refused too
    joined = world.decide("same", X3, X9)  # X-9 is not held (yet): kept, binds it later
    assert joined.returncode == 0, joined.stderr
    refused = world.decide("different", X1, X9)
    assert refused.returncode == 3, refused.stderr
    assert f"the must-links {X1} = {X3} (decision " in refused.stderr, refused.stderr
    assert "make them one person" in refused.stderr
    assert world.harness.count(topic) == before + 1


LogCheck = Callable[[str], None]  # asserts what the restarted worker's log says


def _says(text: str) -> LogCheck:
    def check(log: str) -> None:
        assert text in log, f"the worker's log does not say {text!r}"
    return check


def _sigkill_and_restart(world: World) -> LogCheck:
    world.stop(kill=True)
    world.start()
    return _says("rebuilt from")


def _rebuild_with_the_state_folder_gone(world: World) -> LogCheck:
    world.stop()
    shutil.rmtree(Path(world.harness.settings.home) / "streams"
                  / world.harness.topics.stream_group)
    world.start(NO_SNAPSHOTS)
    return _says("(the whole topic:")


def _restart_from_a_snapshot_holding_the_decisions(world: World) -> LogCheck:
    world.stop()
    world.start()  # snapshots on again: one is written after the next message
    world.touch_decided_records("before the snapshot")
    world.settle("the snapshot's messages")
    world.stop()
    decisions = [m.offset for m in world.harness.read(world.harness.topics.resolve)
                 if (m.key or b"").startswith(b"steward:")]
    world.start()  # resolve rebuilds at the first message it is handed: the updates' first

    def check(log: str) -> None:
        assert "plus the topic after it" in log, "the restart did not use a snapshot"
        offset = int(log.split("(snapshot at offset ")[1].split()[0])
        assert offset > max(decisions), "the snapshot does not hold the decisions"
    return check


def _model_change(world: World) -> LogCheck:
    # the decided pairs stay non-trivial under the new model
    changed = Resolver(model=CHANGED_MODEL.model)
    for key in PEOPLE:
        event = _event(key, 1)
        changed.upsert({**event["payload"], "agency_id": event["agency_id"],
                        "source_record_id": event["source_record_id"], "source_version": 1,
                        "event_time": event["event_time"]})
    assert changed.explain(M1, M2).score < CHANGED_MODEL.model.match_threshold
    assert len({changed.person_of(*key.split(":", 1)) for key in (CA, CB, CC)}) == 1
    path = world.models / "changed.json"
    write_model_file(path, CHANGED_MODEL)
    recorded = world.harness.count(world.harness.topics.resolve_model)
    world.stop()
    world.worker_arguments = (*world.worker_arguments, "--model", str(path))
    world.start()
    world.harness.wait_for(
        lambda: world.harness.count(world.harness.topics.resolve_model) > recorded,
        timeout=TIMEOUT, what="the model change recorded")
    return _says(CHANGED_MODEL.fingerprint)


def _new_versions_that_would_re_link(world: World) -> LogCheck:
    world.publish(CB, identifiers=PASSPORT, date_of_birth="1985-06-10",
                  given_name="Keisha", family_name="Brownfield")  # C-A's facts now
    world.publish(M2, date_of_birth="1979-01-01")  # further from M-1 than before
    world.publish(X2, given_name="Orville", family_name="Testerman",
                  date_of_birth="1970-01-20")  # X-1's facts now
    world.harness.flush()
    # C-B now scores higher with C-C than C-A does (C-A's facts and C-C's phone): the bridge
    # goes with C-B, and C-C, the earlier of the two, anchors their cluster; C-A keeps the id
    world.bridge_with = CB
    world.settle("the re-linking versions")
    verdicts = world.verdicts()
    assert verdicts[frozenset((CA, CB))]["decision"] == "NON_MATCH"
    assert verdicts[frozenset((CA, CB))]["score"] > 20  # the model alone would merge them
    return _says("")  # the same worker goes on


STAGES: dict[str, Callable[[World], LogCheck]] = {
    "SIGKILL and restart": _sigkill_and_restart,
    "rebuild from the topic, state folder gone": _rebuild_with_the_state_folder_gone,
    "restart from a snapshot that holds the decisions":
        _restart_from_a_snapshot_holding_the_decisions,
    "model change": _model_change,
    "new versions that would re-link them": _new_versions_that_would_re_link,
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_decisions_survive(world: World, stage: str) -> None:
    check_log = STAGES[stage](world)
    tag = uuid.uuid4().hex[:6]
    world.touch_decided_records(tag)
    world.settle(f"the updates after: {stage}")
    world.harness.wait_for(
        lambda: all(f"alias {tag}" in (value or {}).get("aliases", [""])
                    for value in _records_of(world)),
        timeout=TIMEOUT, what="the updates resolved")
    check_log(world.log_since_start())
    _honoured(world)
    _assert_verdicts(world)


def _records_of(world: World) -> list[dict[str, Any]]:
    """The golden people of the touched records (their aliases show the update arrived)."""
    golden = world.harness.latest(world.harness.topics.reconciled("person"))
    people = world.people()
    return [golden[people[key]] for key in (M2, CB, X2) if people.get(key) in golden]


@pytest.mark.parametrize("principal", [STREAM, "an agency"])
def test_only_the_steward_principal_writes_decisions(
    world: World, stack: Settings, principal: str, tmp_path: Path,
    enroll_agency: Callable[[str, str], Path],
) -> None:
    """Kafka's own console producer, as the stream service (which reads the topic) and as an
    enrolled agency, is refused; the topic's end offset does not move."""
    topic = world.harness.topics.stewardship_decisions
    client_file = (config.local_client_file(stack.home, STREAM) if principal == STREAM
                   else enroll_agency("police-ctu", world.harness.prefix))
    before = world.harness.count(topic)
    refused = kafka_tool(
        stack, CONSOLE_PRODUCER, "--bootstrap-server", stack.kafka_bootstrap, "--topic", topic,
        "--producer.config", str(java_client_config(client_file, tmp_path / "java")),
        "--producer-property", "max.block.ms=15000",
        "--producer-property", "delivery.timeout.ms=20000",
        "--producer-property", "request.timeout.ms=10000",
        "--property", "parse.key=true", "--property", "key.separator=\t",
        stdin=f"{pair_key(M1, M2)}\tnot-a-decision\n",
    )
    assert "TopicAuthorizationException" in refused.stdout + refused.stderr
    assert world.harness.count(topic) == before
