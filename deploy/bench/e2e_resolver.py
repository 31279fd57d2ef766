"""The in-process resolver on the backfill's own records: the ceiling ``tipsync bench e2e``
compares the pipeline with (issue 18: pipeline / resolver >= 0.5).

The records are made exactly as the backfill's producers made them: every person export of
the manifest goes through ``produce_file`` (reading, mapping, normalising, change decisions)
into the real Avro serializer, with a publisher that keeps the messages instead of sending
them; each person message is then decoded with the registry and checked as ingest checks it
(``check_event``). All of that happens before the clock starts. Timed: ``ResolveStage.apply``
over the person events in the order the exports list them, from an empty resolver, as the
stream's resolve stage meets them after a fresh start (the stage's outputs are built, not
encoded or published).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from deploy.bench import cpu_time
from deploy.demo.generate import Manifest
from producers.canonical import Entity
from producers.checkpoint import CheckpointStore
from producers.delivery import Publisher
from producers.encoding import make_serializer
from producers.events import Governance
from producers.file_source import FileOptions, produce_file
from producers.mapping import load_mapping
from producers.rejects import RejectsFile
from producers.tracker import ChangeTracker
from schemas.agencies import load_agencies
from schemas.config import Settings
from schemas.serde import AvroDeserializer, SchemaRegistry
from schemas.topics import agency_topic
from streams.ingest import AgencyEvent, Rejected, check_event
from streams.resolve import Resolver
from streams.resolve_stage import ResolveStage, trust_ranks


@dataclass
class KeptMessages:
    """Stands in for the producer's ``Publisher``: keeps what would be sent, acknowledges
    each message at once."""

    messages: list[tuple[str, bytes, bytes]] = field(default_factory=list)

    def publish(self, topic: str, key: bytes, value: bytes,
                acknowledged: Callable[[str | None], None]) -> None:
        self.messages.append((topic, key, value))
        acknowledged(None)

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0


def topics_of(agency_id: str) -> Callable[[Entity], str]:
    return lambda entity: agency_topic(agency_id, entity.value)


def person_events(settings: Settings, manifest: Manifest) -> list[AgencyEvent]:
    """The backfill's person events, decoded and checked as the stream app gets them."""
    agencies = load_agencies()
    events: list[AgencyEvent] = []
    with tempfile.TemporaryDirectory(prefix="tipsync-bench-e2e-") as scratch, \
            SchemaRegistry(settings.client.registry()) as registry:
        deserialize = AvroDeserializer(registry)
        for number, file in enumerate(manifest.exports(0, "person")):
            agency = agencies[file.agency]
            governance = Governance(classification=agency.classification,
                                    legal_basis=agency.legal_basis,
                                    retention_days=agency.retention_days)
            entities = [Entity.PERSON, Entity.LINK]
            kept = KeptMessages()
            folder = Path(scratch) / str(number)
            store = CheckpointStore(folder, str(file.path))
            rejects = RejectsFile(folder, file.path.name)
            tracker = ChangeTracker(
                file.agency, store, cast(Publisher, kept),
                make_serializer(settings, entities, file.agency, governance),
                topics_of(file.agency),
                governance,
            )
            mapping = load_mapping(file.mapping) if file.mapping is not None else None
            try:
                produce_file(FileOptions(file.path, Entity.PERSON, mapping, False, False),
                             tracker, rejects)
            finally:
                rejects.close()
                store.close()
            person_topic = agency_topic(file.agency, "person")
            for topic, key, value in kept.messages:
                if topic != person_topic:
                    continue
                record = deserialize(value, expected=Entity.PERSON.value).record
                try:
                    events.append(check_event(file.agency, "person", key, record,
                                              agency=agency))
                except Rejected:
                    continue  # ingest would dead-letter it; the pipeline never resolves it
    return events


def resolver_rate(settings: Settings, manifest: Manifest) -> dict[str, Any]:
    events = person_events(settings, manifest)
    stage = ResolveStage(lambda: Resolver(trust_ranks(load_agencies())))
    started, cpu_started = time.perf_counter(), time.process_time()
    for offset, event in enumerate(events):
        stage.apply(event, offset)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    return {
        "person_records": len(events),
        "seconds": round(seconds, 2),
        "records_per_second": round(len(events) / seconds, 1) if seconds > 0 else None,
        "records_per_cpu_second": round(len(events) / cpu, 1) if cpu > 0 else None,
    }


# The parts of the backfill's CPU table that do the pipeline's work outside the stream app;
# ``bench`` and ``other`` are not the pipeline's.
OUTSIDE_STREAM = (cpu_time.SINK, cpu_time.KAFKA, cpu_time.REGISTRY, cpu_time.POSTGRESQL,
                  cpu_time.PRODUCERS)


def backfill_ceiling(cpu: dict[str, Any], resolver: dict[str, Any],
                     cores: int) -> dict[str, Any] | None:
    """How fast the backfill could go on ``cores`` if the stream app cost no more than its
    resolver does in-process, everything else staying as measured: the CPU per person
    record of the parts outside the stream app (``cpu``: the backfill's CPU figures) plus
    the resolver's own (``resolver``: ``resolver_rate``), spread over every core. The
    pipeline ÷ resolver ratio cannot pass that ceiling's, whatever the stream app does.
    None without the CPU figures."""
    per_cpu_second = resolver.get("records_per_cpu_second")
    wall_rate = resolver.get("records_per_second")
    if not cpu or not per_cpu_second or not wall_rate or cores < 1:
        return None
    outside = sum(cpu[part]["ms_per_change"] or 0.0 for part in OUTSIDE_STREAM if part in cpu)
    stream = sum(row["ms_per_change"] or 0.0 for part, row in cpu.items()
                 if part.startswith(cpu_time.STREAM))  # the workers by role, and their parent
    resolving = 1000.0 / per_cpu_second
    records_per_second = 1000.0 * cores / (outside + resolving)
    return {
        "cores": cores,
        "outside_stream_ms_per_record": round(outside, 3),
        "stream_ms_per_record": round(stream, 3),
        "resolver_ms_per_record": round(resolving, 3),
        "records_per_second": round(records_per_second, 1),
        "pipeline_over_resolver": round(records_per_second / wall_rate, 3),
    }
