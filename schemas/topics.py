"""Every topic name of tipsync, and the plan ``tipsync topics create`` applies.

- ``tip.agency.<agency_id>.<entity>``: an agency's change events, keyed
  ``<agency_id>:<source_record_id>`` so all changes of a record stay in order in one partition.
  The prefix ``tip.agency.<agency_id>.`` is the security boundary of that agency.
- ``tip.reconciled.<entity>`` and ``tip.reconciled.match_decision``: golden records keyed by
  golden id, compacted (the latest value per key is the state).
- ``tip.dlq.<stage>``: what a stage could not process, with the reason (stages: ingest,
  resolve, sink; the one format is ``schemas.dead_letters``). A producer's rejects stay at the
  agency, in its rejects file.
- ``tip.internal.<name>``: topics private to the stream processors.
- ``tip.stewardship.decisions``: stewards' must-link / cannot-link decisions
  (``schemas.stewardship``), keyed by the canonical pair, compacted and kept forever.
- ``tip.outbound.<agency_id>``: what the task force sends back to one agency (only that
  agency may read it); the agency's own consumer groups are named under
  ``tip.outbound.<agency_id>.``.

Sizing (partitions, replication factor, retention of agency and dead-letter topics) comes
from the environment through ``schemas.config.TopicSettings``; the defaults suit one machine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from schemas.agencies import AGENCY_ID_PATTERN, validate_agency_id
from schemas.client_config import ClientConfig
from schemas.config import DAY_MS, PARTITIONS, REPLICATION_FACTOR, TopicSettings
from schemas.entities import ENTITIES, RECONCILED_OUTPUTS, check_entity

ROOT: Final = "tip"
DLQ_STAGES: Final[tuple[str, ...]] = ("ingest", "resolve", "sink")

_INTERNAL_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_ROOT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class AgencyTopic(NamedTuple):
    agency_id: str
    entity: str


@dataclass(frozen=True)
class TopicNames:
    """Every topic and consumer-group name of tipsync, under one root.

    The root is ``tip`` in production; tests and benchmarks give one of their own (every
    command's ``--topic-root``) so parallel runs never share a topic or a consumer group. The
    root *replaces* ``tip``: ``TopicNames("t1").agency("customs", "case")`` is
    ``t1.agency.customs.case``. This class is the only place a topic name is built.
    """

    root: str = ROOT
    agency_pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _ROOT.fullmatch(self.root):
            raise ValueError(
                f"topic root '{self.root}' is not valid (letters, digits, '.', '_' and '-', "
                "starting with a letter or digit); production uses 'tip'"
            )
        # group 1 is the agency id, group 2 the entity (aiokafka's ``pattern=`` takes it too)
        pattern = (rf"^{re.escape(self.root)}\.agency\.({AGENCY_ID_PATTERN})\."
                   rf"({'|'.join(ENTITIES)})$")
        object.__setattr__(self, "agency_pattern", re.compile(pattern))

    # --- agency topics: the security boundary of each agency

    def agency_prefix(self, agency_id: str) -> str:
        """``tip.agency.<agency_id>.``: what an agency may write under, and nothing else."""
        return f"{self.root}.agency.{validate_agency_id(agency_id)}."

    def agency(self, agency_id: str, entity: str) -> str:
        """``tip.agency.<agency_id>.<entity>``; ValueError for a malformed id or unknown
        entity."""
        return self.agency_prefix(agency_id) + check_entity(entity)

    def parse_agency(self, topic: str) -> AgencyTopic | None:
        """The agency id and entity of an agency topic, None for any other topic."""
        match = self.agency_pattern.match(topic)
        return AgencyTopic(match.group(1), match.group(2)) if match else None

    # --- what the pipeline writes

    def reconciled(self, output: str) -> str:
        """``tip.reconciled.<entity>`` or ``tip.reconciled.match_decision``."""
        if output not in RECONCILED_OUTPUTS:
            raise ValueError(
                f"'{output}' has no reconciled topic (expected one of: "
                f"{', '.join(RECONCILED_OUTPUTS)})"
            )
        return f"{self.root}.reconciled.{output}"

    def dlq(self, stage: str) -> str:
        """``tip.dlq.<stage>`` for stage ingest, resolve or sink."""
        if stage not in DLQ_STAGES:
            raise ValueError(
                f"'{stage}' is not a pipeline stage with a dead-letter topic "
                f"(expected one of: {', '.join(DLQ_STAGES)})"
            )
        return f"{self.root}.dlq.{stage}"

    @property
    def internal_prefix(self) -> str:
        return f"{self.root}.internal."

    def internal(self, name: str) -> str:
        """``tip.internal.<name>``: lower-case letters, digits, '.', '_' and '-'."""
        if not _INTERNAL_NAME.fullmatch(name):
            raise ValueError(
                f"'{name}' is not a valid internal topic name (lower-case letters, digits, "
                "'.', '_' and '-', starting with a letter or digit)"
            )
        return self.internal_prefix + name

    @property
    def resolve(self) -> str:
        """Ingest's accepted person and link events, in one partition, for resolve."""
        return self.internal("resolve")

    @property
    def resolve_model(self) -> str:
        """The scoring model the published view was made with (one compacted key)."""
        return self.internal("resolve-model")

    @property
    def person_mapping(self) -> str:
        """Source key -> golden person id, as resolve decided it."""
        return self.internal("person-mapping")

    @property
    def stewardship_decisions(self) -> str:
        """Stewards' decisions (``schemas.stewardship``): governed, compacted, kept forever,
        keyed by the canonical pair; the stream app forwards them to the resolve topic."""
        return f"{self.root}.stewardship.decisions"

    # --- what flows back to an agency

    def outbound(self, agency_id: str) -> str:
        """``tip.outbound.<agency_id>``: the agency's feed; only that agency reads it."""
        return f"{self.root}.outbound.{validate_agency_id(agency_id)}"

    def outbound_group_prefix(self, agency_id: str) -> str:
        """``tip.outbound.<agency_id>.``: the consumer groups an agency may use to read its
        feed (``tipsync subscribe`` uses ``outbound_group``)."""
        return self.outbound(agency_id) + "."

    def outbound_group(self, agency_id: str) -> str:
        """The consumer group of ``tipsync subscribe`` for one agency."""
        return self.outbound_group_prefix(agency_id) + "subscribe"

    # --- consumer groups

    @property
    def stream_group(self) -> str:
        """The stream workers' consumer group (faust's app id)."""
        return self.internal("stream")

    @property
    def sink_group(self) -> str:
        """The sink's consumer group (its offsets live in PostgreSQL, mirrored to Kafka)."""
        return f"{self.root}.sink"

    def owns(self, name: str) -> bool:
        """Whether a topic or group name is under this root."""
        return name.startswith(self.root + ".")


TOPICS: Final = TopicNames()


def agency_topic(agency_id: str, entity: str) -> str:
    """``tip.agency.<agency_id>.<entity>`` (``TOPICS.agency``)."""
    return TOPICS.agency(agency_id, entity)


def parse_agency_topic(topic: str) -> AgencyTopic:
    """The agency id and entity of an agency topic; ValueError saying the expected shape."""
    parsed = TOPICS.parse_agency(topic)
    if parsed is None:
        raise ValueError(
            f"topic '{topic}' is not an agency topic (expected {ROOT}.agency.<agency_id>."
            f"<entity> with entity one of {', '.join(ENTITIES)})"
        )
    return parsed


def source_key(agency_id: str, source_record_id: str) -> str:
    """The key of an agency topic message: ``<agency_id>:<source_record_id>``.

    Agency ids contain no ':', so the first ':' always separates the two.
    """
    return f"{agency_id}:{source_record_id}"


def parse_source_key(key: str | bytes) -> tuple[str, str]:
    """``(agency_id, source_record_id)`` of a source key; ValueError when malformed."""
    text = key.decode("utf-8") if isinstance(key, bytes) else key
    agency_id, separator, record_id = text.partition(":")
    if not separator or not record_id:
        raise ValueError(
            f"message key '{text[:80]}' is not '<agency_id>:<source_record_id>'; the producer "
            "must key every event by its source record"
        )
    return validate_agency_id(agency_id), record_id


# ---------------------------------------------------------------------------------------------
# Topic plan: what `tipsync topics create` makes.


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


# Erasure (``tipsync erase``) removes a record's older messages by compaction, and Kafka never
# compacts the active segment: ``max.compaction.lag.ms`` rolls a compacted topic's active
# segment at its first append after this long (the roll deadline is min(segment.ms, it)) and
# makes the rolled records eligible whatever the dirty ratio, so an erased record's copies
# stay on disk about this long after its tombstone (docs/SECURITY.md "Erasure and retention").
MAX_COMPACTION_LAG_MS: Final = DAY_MS


def compacted_config() -> dict[str, str]:
    """Config of a topic whose latest value per key is the state (reconciled, changelogs)."""
    # Keep tombstones a day so a consumer that was down for hours still sees a deletion.
    return {"cleanup.policy": "compact", "delete.retention.ms": str(DAY_MS),
            "max.compaction.lag.ms": str(MAX_COMPACTION_LAG_MS)}


# How long the resolve topic keeps a tombstone: for good, in practice (100 years; Kafka adds
# it to a time, so not Long.MAX). A tombstone of ``tipsync erase`` is what tells a worker
# rebuilding from an older snapshot (its own, or one left in another worker's folder) that
# the record is gone, once compaction has removed the DELETE before it. It holds ids only.
RESOLVE_TOMBSTONE_RETENTION_MS: Final = 100 * 365 * DAY_MS


def resolve_config() -> dict[str, str]:
    """Config of ``tip.internal.resolve``: compacted, its tombstones kept."""
    return {**compacted_config(), "delete.retention.ms": str(RESOLVE_TOMBSTONE_RETENTION_MS)}


def erasable_config(retention_ms: int) -> dict[str, str]:
    """Config of an agency or dead-letter topic: deleted after ``retention_ms`` as before, and
    compacted too, so that a tombstone of ``tipsync erase`` removes a record's messages
    (``compact,delete``; a message without a key is then refused by the broker)."""
    return {**compacted_config(), "cleanup.policy": "compact,delete",
            "retention.ms": str(retention_ms)}


def stewardship_config() -> dict[str, str]:
    """Config of ``tip.stewardship.decisions``: the latest decision of every pair, forever
    (``retention.ms=-1`` so that even a policy of compact,delete would never drop one)."""
    return {**compacted_config(), "retention.ms": "-1"}


def outbound_config(settings: TopicSettings) -> dict[str, str]:
    """Config of an agency's feed ``tip.outbound.<id>``: messages kept as long as the agency's
    own topics keep theirs, so a subscriber that was down that long still catches up."""
    return {"cleanup.policy": "delete", "retention.ms": str(settings.agency_retention_ms)}


# Decisions are few (made by people): one partition keeps them in one order.
STEWARDSHIP_PARTITIONS: Final = 1


def topic_plan(
    agency_ids: Iterable[str],
    settings: TopicSettings | None = None,
    internal_compacted: Iterable[str] = (),
    names: TopicNames = TOPICS,
) -> list[TopicSpec]:
    """Every topic tipsync needs for these agencies (pure: no Kafka involved).

    ``internal_compacted`` names extra ``tip.internal.*`` topics (e.g. changelogs the stream
    processors declare) that are created compacted.
    """
    sizing = settings or TopicSettings()
    agency_ids = sorted(agency_ids)  # read twice: agency topics and feeds

    def spec(name: str, config: dict[str, str]) -> TopicSpec:
        return TopicSpec(name, sizing.partitions, sizing.replication_factor, config)

    agency_config = erasable_config(sizing.agency_retention_ms)
    dlq_config = erasable_config(sizing.dlq_retention_ms)
    plan = [
        spec(names.agency(agency_id, entity), agency_config)
        for agency_id in agency_ids
        for entity in ENTITIES
    ]
    plan += [spec(names.reconciled(output), compacted_config()) for output in RECONCILED_OUTPUTS]
    plan += [spec(names.dlq(stage), dlq_config) for stage in DLQ_STAGES]
    plan.append(TopicSpec(names.stewardship_decisions, STEWARDSHIP_PARTITIONS,
                          sizing.replication_factor, stewardship_config()))
    plan += [spec(names.outbound(agency_id), outbound_config(sizing))
             for agency_id in agency_ids]
    plan += [spec(names.internal(name), compacted_config()) for name in internal_compacted]
    return plan


def create_topics(
    bootstrap: str | ClientConfig, plan: Iterable[TopicSpec], timeout_seconds: float = 30.0
) -> dict[str, str]:
    """Create the planned topics that do not exist yet (existing ones are left as they are).

    ``bootstrap``: the servers, or the client config (``Settings.client``).
    Returns topic -> "created" | "exists". Raises RuntimeError naming the topic and Kafka's
    reason for any other failure.
    """
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(ClientConfig.of(bootstrap).librdkafka())
    specs = list(plan)
    if not specs:
        return {}
    futures = admin.create_topics(
        [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=spec.replication_factor,
                config=spec.config,
            )
            for spec in specs
        ],
        operation_timeout=timeout_seconds,
        request_timeout=timeout_seconds,
    )
    outcome: dict[str, str] = {}
    failures: list[str] = []
    for name, future in futures.items():
        try:
            future.result()
            outcome[name] = "created"
        except Exception as error:  # noqa: BLE001 - KafkaException carries a KafkaError
            kafka_error = error.args[0] if error.args else None
            if getattr(kafka_error, "code", lambda: None)() == KafkaError.TOPIC_ALREADY_EXISTS:
                outcome[name] = "exists"
            else:
                failures.append(f"{name}: {error}")
    if failures:
        raise RuntimeError(
            f"Kafka at {bootstrap} refused to create {len(failures)} topic(s): "
            + "; ".join(failures)
            + f" (check `tipsync stack status` and the {PARTITIONS} / "
            f"{REPLICATION_FACTOR} settings)"
        )
    return outcome


def update_topic_configs(
    bootstrap: str | ClientConfig, plan: Iterable[TopicSpec], timeout_seconds: float = 30.0
) -> list[str]:
    """Set the planned configuration on topics that exist already (each planned key, other
    keys left as they are): how a topic created by an earlier release becomes, e.g.,
    compact,delete. Returns the names updated; RuntimeError names any Kafka refused."""
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
    )

    admin = AdminClient(ClientConfig.of(bootstrap).librdkafka())
    existing = set(admin.list_topics(timeout=timeout_seconds).topics)
    resources = [
        ConfigResource(ConfigResource.Type.TOPIC, spec.name, incremental_configs=[
            ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
            for key, value in spec.config.items()
        ])
        for spec in plan if spec.name in existing and spec.config
    ]
    if not resources:
        return []
    failures: list[str] = []
    updated: list[str] = []
    for resource, future in admin.incremental_alter_configs(
        resources, request_timeout=timeout_seconds
    ).items():
        try:
            future.result()
            updated.append(resource.name)
        except Exception as error:  # noqa: BLE001 - KafkaException carries a KafkaError
            failures.append(f"{resource.name}: {error}")
    if failures:
        raise RuntimeError(
            f"Kafka at {bootstrap} refused to update {len(failures)} topic(s): "
            + "; ".join(failures) + " (the admin principal may alter topic configs)"
        )
    return sorted(updated)
