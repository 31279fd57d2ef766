"""The per-message work of ``bench stream --peers``'s two peers of the faust worker: ingest's
decode, check and forward of one agency message, with tipsync's own code (``schemas.serde``
decodes, ``streams.ingest`` checks and judges against the held versions), so that the peers
differ from the faust worker only in the engine around it.

What it does, as ``streams.ingest_handler`` does for a person or link event: the value is
decoded with the contract's deserializer (refusing another record type), checked
(``check_event``), judged against the held entry of its record (``judge``); an accepted event
is remembered (``remember``) and forwarded as it came, keyed by its held key, to the output.
The engine keeps the held entries (a dict for the bare loop, quix-streams' state) and writes
the entry's JSON to a changelog, as faust's table does. A replayed or stale event is dropped
and counted (``streams.ingest_handler`` re-forwards the replay of a record's latest version;
the benchmark's events are all new, version 1, so neither happens). A message that does not
decode or check is counted as a dead letter (the benchmark sends none).

It must import without faust: the quix-streams application runs it in a virtual environment
of its own (``deploy.bench.stream_peers_quix``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.dead_letters import Rejected
from schemas.errors import WireFormatError
from schemas.topics import TopicNames
from streams.ingest import RESOLVED_ENTITIES, Held, Verdict, check_event, judge, remember

Deserialize = Callable[..., Any]  # schemas.serde.AvroDeserializer: (data, expected=) -> record


@dataclass(frozen=True)
class Forward:
    """What to send for an accepted event: the output's key and value, and the held entry's
    changelog key and value (JSON, as faust's table writes them)."""

    key: bytes
    value: bytes
    held_key: str
    held_json: list[Any]

    def changelog(self) -> tuple[bytes, bytes]:
        return orjson.dumps(self.held_key), orjson.dumps(self.held_json)


@dataclass
class Tally:
    forwarded: int = 0
    dropped: int = 0  # replays and stale versions
    rejected: int = 0  # would be dead letters

    def as_dict(self) -> dict[str, int]:
        return {"forwarded": self.forwarded, "dropped": self.dropped, "rejected": self.rejected}


@dataclass
class IngestWork:
    """``IngestWork(deserialize, topics)(topic, key, value, held)``: the ``Forward`` of one
    agency message, or None. ``held(held_key)`` gives the held entry's JSON (None if
    none)."""

    deserialize: Deserialize
    topics: TopicNames
    tally: Tally = field(default_factory=Tally)
    _routes: dict[str, tuple[str, str]] = field(default_factory=dict)

    def route(self, topic: str) -> tuple[str, str]:
        """(agency id, entity) of an agency topic, worked out once per topic."""
        if topic not in self._routes:
            parsed = self.topics.parse_agency(topic)
            if parsed is None:
                raise ValueError(f"{topic} is not an agency topic under {self.topics.root}")
            agency_id, entity = parsed
            if entity not in RESOLVED_ENTITIES:
                raise ValueError(f"{topic}: the benchmark forwards person and link events "
                                 f"only, not {entity} (their golden record is not built here)")
            self._routes[topic] = (agency_id, entity)
        return self._routes[topic]

    def __call__(self, topic: str, key: bytes | None, value: bytes | None,
                 held: Callable[[str], Any]) -> Forward | None:
        if value is None:
            return None  # an erasure's tombstone: nothing to ingest
        agency_id, entity = self.route(topic)
        try:
            record = self.deserialize(value, expected=entity).record
            event = check_event(agency_id, entity, key, record)
        except (WireFormatError, Rejected):
            self.tally.rejected += 1
            return None
        key_text = event.held_key
        before = Held.from_json(held(key_text))
        if judge(before, event.event_id, event.source_version) is not Verdict.ACCEPT:
            self.tally.dropped += 1
            return None
        entry = remember(before, event.event_id, event.source_version)
        self.tally.forwarded += 1
        return Forward(key_text.encode(), value, key_text, entry.to_json())
