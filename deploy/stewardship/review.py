"""The review queue and stewards' decisions (what ``tipsync review`` does).

- **The queue** (``open_pairs``, ``find_pair``): pairs of person source records whose latest
  match decision in ``reconciled.match_decision`` is REVIEW and that no steward decision in
  force covers, with both records side by side (each record's source row and the golden
  person it belongs to now) and the per-field evidence the match decision stored. A pair's
  match decisions may name its records in either order: pairs are put in canonical order (the
  source keys sorted by code point, ``COLLATE "C"``, as ``schemas.stewardship`` does).
- **Decisions** (``publish_decision``): a ``StewardDecision`` on
  ``tip.stewardship.decisions``, keyed by its pair key; the stream app forwards it to the
  resolver (``streams.stewardship``). ``read_decisions`` reads the topic back: it is the
  record of every decision in force (compacted, kept forever), so the queue reads it rather
  than a copy in the store that could lag behind (a pair decided a second ago is no longer
  open, even before the resolver has re-published it).

The store keeps golden people, not the agencies' own records: a side shows the record's
source row and the values of its golden person now (the record's own values stay in Kafka).

The queries run on the caller's connection: a steward's own login (``deploy.stewardship.login``
for the command, the session's for the console), so row-level security decides which pairs
come back, and every person shown side by side is recorded in the read audit (path
``review_pair``, migration 0012).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from confluent_kafka import Consumer, Producer
from psycopg.rows import dict_row

from deploy.operations.topic_reader import read_to_end
from schemas.config import Settings, TopicSettings
from schemas.registry import SchemaRegistry
from schemas.serde import AvroDeserializer, AvroSerializer
from schemas.stewardship import (
    PAIR_SEPARATOR,
    StewardDecision,
    decision_pair_key,
    pair_id,
)
from schemas.topics import (
    STEWARDSHIP_PARTITIONS,
    TopicNames,
    TopicSpec,
    create_topics,
    stewardship_config,
)
from streams.resolve.stewardship import StewardDecisions

# The latest match decision of every pair, its records in canonical order.
_LATEST = """
WITH keyed AS (
    SELECT d.*,
           d.left_agency_id || ':' || d.left_source_record_id AS l_key,
           d.right_agency_id || ':' || d.right_source_record_id AS r_key
    FROM reconciled.match_decision AS d
), canonical AS (
    SELECT keyed.*,
           CASE WHEN l_key COLLATE "C" < r_key COLLATE "C" THEN l_key ELSE r_key END AS a_key,
           CASE WHEN l_key COLLATE "C" < r_key COLLATE "C" THEN r_key ELSE l_key END AS b_key
    FROM keyed
), latest AS (
    SELECT DISTINCT ON (a_key, b_key)
           a_key, b_key, score, features, rule, decision, decided_at
    FROM canonical
    ORDER BY a_key, b_key, decided_at DESC
)
SELECT * FROM latest
"""

_SIDES = """
SELECT s.agency_id || ':' || s.source_record_id AS key, s.person_id AS mapped_person_id,
       s.source_version, s.event_time, s.deleted, p.person_id, p.given_name, p.middle_name,
       p.family_name, p.aliases, p.date_of_birth, p.dob_precision, p.date_of_birth_text, p.sex,
       p.citizenship, p.identifiers, p.phones, p.emails, p.addresses, p.agencies,
       p.source_count, p.classification,
       reconciled.record_person_read('review_pair', ARRAY[p.person_id]) AS read_recorded
FROM reconciled.person_source AS s
LEFT JOIN reconciled.person AS p ON p.person_id = reconciled.resolve_person_id(s.person_id)
WHERE s.agency_id || ':' || s.source_record_id = ANY(%s)
"""


@dataclass
class ReviewPair:
    """One uncertain pair: its records, the evidence, and the steward decision, if any."""

    a_key: str
    b_key: str
    score: float
    features: dict[str, float]
    rule: str | None
    decision: str
    decided_at: Any
    sides: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    steward: dict[str, Any] | None = None

    @property
    def pair_id(self) -> str:
        return pair_id(self.a_key, self.b_key)

    def to_json(self) -> dict[str, Any]:
        return {
            "pair_id": self.pair_id, "a_key": self.a_key, "b_key": self.b_key,
            "score": self.score, "decision": self.decision, "rule": self.rule,
            "decided_at": self.decided_at, "features": self.features,
            "a": self.sides.get(self.a_key), "b": self.sides.get(self.b_key),
            "steward_decision": self.steward,
        }


def _pair(row: dict[str, Any]) -> ReviewPair:
    return ReviewPair(row["a_key"], row["b_key"], float(row["score"]),
                      dict(row["features"] or {}), row["rule"], row["decision"],
                      row["decided_at"])


def _add_sides(connection: psycopg.Connection, pairs: list[ReviewPair]) -> None:
    keys = sorted({key for pair in pairs for key in (pair.a_key, pair.b_key)})
    with connection.cursor(row_factory=dict_row) as cursor:
        cursor.execute(_SIDES, (keys,))
        found = {row.pop("key"): row for row in cursor.fetchall()}
    for row in found.values():
        row.pop("read_recorded")
    for pair in pairs:
        pair.sides = {key: found.get(key) for key in (pair.a_key, pair.b_key)}


def in_force(decisions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The decisions that bind their pair (the latest per pair is not a withdrawal)."""
    return {key: record for key, record in decisions.items() if record["kind"] != "WITHDRAWN"}


def open_pairs(
    connection: psycopg.Connection, decisions: dict[str, dict[str, Any]],
    agency: str | None = None, min_score: float | None = None,
) -> list[ReviewPair]:
    """The review queue, highest score first (``decisions``: ``read_decisions``)."""
    query = _LATEST + " WHERE decision = 'REVIEW'"
    parameters: list[Any] = []
    if min_score is not None:
        query += " AND score >= %s"
        parameters.append(min_score)
    if agency is not None:
        query += " AND (split_part(a_key, ':', 1) = %s OR split_part(b_key, ':', 1) = %s)"
        parameters += [agency, agency]
    query += " ORDER BY score DESC, a_key, b_key"
    with connection.cursor(row_factory=dict_row) as cursor:
        cursor.execute(query, parameters)
        rows = cursor.fetchall()
    covered = in_force(decisions)
    pairs = [pair for pair in map(_pair, rows)
             if f"{pair.a_key}{PAIR_SEPARATOR}{pair.b_key}" not in covered]
    if pairs:
        _add_sides(connection, pairs)
    return pairs


def find_pair(
    connection: psycopg.Connection, wanted: str, decisions: dict[str, dict[str, Any]]
) -> ReviewPair | None:
    """A pair by its id (``pair_id``) or its pair key ``<a key>|<b key>``, open or not."""
    if PAIR_SEPARATOR in wanted:
        condition, value = "a_key || '|' || b_key = %s", wanted
    else:
        condition = ("left(encode(sha256(convert_to(a_key || '|' || b_key, 'UTF8')), 'hex'), "
                     "12) = %s")
        value = wanted.lower()
    with connection.cursor(row_factory=dict_row) as cursor:
        cursor.execute(f"{_LATEST} WHERE {condition}", (value,))
        row = cursor.fetchone()
    if row is None:
        return None
    pair = _pair(row)
    pair.steward = decisions.get(f"{pair.a_key}{PAIR_SEPARATOR}{pair.b_key}")
    _add_sides(connection, [pair])
    return pair


# --------------------------------------------------------------------------- the topic


def _order(record: dict[str, Any]) -> tuple[Any, str]:
    return record["decided_at"], record["decision_id"]


def read_decisions(settings: Settings, topics: TopicNames,
                   timeout: float = 15.0) -> dict[str, dict[str, Any]]:
    """pair key -> the decision in force (the latest by ``decided_at``, then decision id, as
    the resolver takes it), read from the whole stewardship topic; {} when it does not exist."""
    topic = topics.stewardship_decisions
    consumer = Consumer(settings.client.librdkafka({
        "group.id": f"{topics.root}.review", "enable.auto.commit": False,
        "enable.partition.eof": True,
    }))
    registry = SchemaRegistry(settings.client.registry())
    decisions: dict[str, dict[str, Any]] = {}
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return {}
        deserializer = AvroDeserializer(registry)
        # assigned, never committed: no group appears (TopicReadError is a RuntimeError)
        for message in read_to_end(consumer, topic, metadata.partitions, timeout):
            value = message.value()
            if value is None:
                continue
            record = deserializer(value, expected="stewardship.decision").record
            key = decision_pair_key(record)
            held = decisions.get(key)
            if held is None or _order(record) > _order(held):
                decisions[key] = record
    finally:
        consumer.close()
        registry.close()
    return decisions


def contradiction(decisions: dict[str, dict[str, Any]],
                  decision: StewardDecision) -> str | None:
    """Why ``decision`` contradicts the decisions in force (``read_decisions``), as a
    sentence naming them and the way out, or None. The resolver keeps such a pair apart
    anyway (a must-link decided after the cannot-links it contradicts is not applied,
    ``streams.resolve.stewardship``); refusing it here tells the steward at once."""
    held = StewardDecisions()
    for record in decisions.values():
        held.apply(record)
    found = held.conflict(decision.to_record())
    if found is None:
        return None
    apart, new = found.cannot, found.decision
    steps, at = [], apart.left  # the chain as a walk from one end of the cannot-link
    for link in found.chain:
        following = link.right if link.left == at else link.left
        steps.append(f"{at} = {following} " + (
            "(this decision)" if link is new else f"(decision {link.decision_id})"))
        at = following
    chain = ", ".join(steps)
    if new.kind == "MUST_LINK":
        return (
            f"{new.left} and {new.right} are not joined: {apart.left} and {apart.right} are "
            f"different people by decision {apart.decision_id} ({apart.steward}, "
            f"{apart.decided_at:%Y-%m-%d %H:%M} UTC), and with the must-links {chain} they "
            "would be one. If they are one person, withdraw that decision first (tipsync "
            f"review decide --withdraw {apart.left} {apart.right}); if not, "
            "this pair is different people too (--different)"
        )
    return (
        f"{new.left} and {new.right} are not separated: the must-links {chain} make them one "
        "person. Withdraw the must-link that is wrong first (tipsync review decide --withdraw "
        "A_KEY B_KEY), then decide this pair again"
    )


def publish_decision(settings: Settings, topics: TopicNames, decision: StewardDecision,
                     timeout: float = 30.0) -> None:
    """Publish one decision, keyed by its pair key, and wait until Kafka has it. Creates the
    stewardship topic if no one has yet (the stream app and `tipsync topics create` do too)."""
    create_topics(settings.client, [TopicSpec(
        topics.stewardship_decisions, STEWARDSHIP_PARTITIONS,
        TopicSettings.from_environment().replication_factor, stewardship_config(),
    )])
    registry = SchemaRegistry(settings.client.registry())
    try:
        serialize = AvroSerializer(registry, "stewardship.decision")
        record = decision.to_record()
        value = serialize(record)
    finally:
        registry.close()
    producer = Producer(settings.client.librdkafka({"acks": "all", "enable.idempotence": True}))
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    producer.produce(topics.stewardship_decisions, key=decision_pair_key(record).encode(),
                     value=value, on_delivery=delivered)
    if producer.flush(timeout) or failures:
        raise RuntimeError(
            f"the decision was not acknowledged by Kafka ({'; '.join(failures) or 'timed out'})"
        )


# --------------------------------------------------------------------------- text


_SHOWN = ("person_id", "given_name", "middle_name", "family_name", "aliases", "date_of_birth",
          "dob_precision", "date_of_birth_text", "sex", "citizenship", "identifiers", "phones",
          "emails", "addresses", "agencies", "classification", "source_version", "deleted")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(_cell(item) for item in value) or "-"
    if isinstance(value, dict):
        return " ".join(str(v) for v in value.values() if v is not None)
    return str(value)


def format_pairs(pairs: Iterable[ReviewPair]) -> str:
    """Each pair with both records side by side and the evidence, field by field."""
    blocks = []
    for pair in pairs:
        lines = [f"pair {pair.pair_id}  score {pair.score:.1f}  {pair.decision}  "
                 f"rule {pair.rule or '-'}  decided {pair.decided_at}"]
        if pair.steward is not None:
            lines.append(f"  steward decision: {pair.steward['kind']} by "
                         f"{pair.steward['steward']} at {pair.steward['decided_at']}"
                         f" ({pair.steward.get('reason') or 'no reason given'})")
        sides = [pair.sides.get(pair.a_key) or {}, pair.sides.get(pair.b_key) or {}]
        width = max(len(pair.a_key), 24)
        lines.append(f"  {'':<18} {pair.a_key:<{width}}  {pair.b_key}")
        for name in _SHOWN:
            left, right = (_cell(side.get(name)) for side in sides)
            if left == right == "-":
                continue
            mark = " " if left == right else "≠"
            lines.append(f"  {name:<17}{mark} {left[:width]:<{width}}  {right}")
        evidence = sorted(pair.features.items(), key=lambda item: -abs(item[1]))
        lines.append("  evidence: " + (", ".join(f"{name} {weight:+.1f}"
                                                 for name, weight in evidence) or "-"))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)

