"""``tipsync bench sink``: the sink's write path against PostgreSQL's COPY ceiling.

Both halves start from the same synthetic reconciled person changes (plain dicts, as the
Avro deserializer returns them; decoding is measured by ``tipsync bench serde``), in the
same batches, in a throwaway database on the configured server:

- the sink: reduce each batch to the last change per golden id, convert, COPY into the
  temporary tables, upsert with the version guard, advance the offsets, commit;
- the ceiling: convert every change and COPY it, unreduced, into an unindexed table with
  the columns of the sink's incoming table (the same bytes the sink sends), commit.

Generating the dicts is not timed. Everything is synthetic: names come from short lists.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from deploy.bench.scratch import scratch_database
from deploy.bench.serde import cpu_model
from schemas.config import Settings
from sinks import store
from sinks.batch import Decode, Message, golden_id_of, prepare_batch
from sinks.consumer import SinkOptions
from sinks.migrate import migrate
from sinks.records import golden_rows
from sinks.tables import PERSON

GIVEN_NAMES = ("Tamika", "Kevin", "Keisha", "Marlon", "Shanice", "Andre", "Simone", "Damion",
               "Latoya", "Omar", "Kimberly", "Ricardo", "Tashana", "Jermaine", "Nadine")
FAMILY_NAMES = ("Brown", "Campbell", "Williams", "Clarke", "Reid", "Thompson", "Johnson",
                "Gordon", "Henry", "Morgan", "Grant", "Francis", "Stewart", "Lewis")
AGENCIES = ("police-ctu", "immigration", "child-protection", "victim-services",
            "safe-haven-shelter", "hope-line-ngo")
PARISHES = ("KINGSTON", "ST_ANDREW", "ST_CATHERINE", "ST_JAMES", "CLARENDON", "MANCHESTER")
TOPIC = "bench.reconciled.person"
TOMBSTONE_SHARE = 0.01
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Person:
    given_name: str
    family_name: str
    date_of_birth: str
    sex: str
    sources: tuple[tuple[str, str], ...]


def synthetic_people(keys: int, rng: random.Random) -> list[Person]:
    people = []
    for index in range(keys):
        born = date(1960, 1, 1) + timedelta(days=rng.randrange(45 * 365))
        sources = tuple(
            (agency, f"{agency[:3].upper()}-{index}")
            for agency in rng.sample(AGENCIES, rng.choice((1, 2, 2, 3)))
        )
        people.append(Person(rng.choice(GIVEN_NAMES), rng.choice(FAMILY_NAMES),
                             born.isoformat(), rng.choice(("FEMALE", "MALE")), sources))
    return people


def golden_person(person: Person, golden_version: int, tick: int) -> dict[str, Any]:
    """One reconciled change, shaped like a decoded GoldenPerson."""
    changed = EPOCH + timedelta(seconds=tick)
    agency, record = person.sources[0]
    return {
        "golden_version": golden_version,
        "merged_into": None,
        "given_name": person.given_name,
        "middle_name": None,
        "family_name": person.family_name,
        "aliases": [],
        "date_of_birth": person.date_of_birth,
        "dob_precision": "DAY",
        "sex": person.sex,
        "citizenship": ["JM"],
        "identifiers": [{"scheme": "TRN", "value": f"{tick % 10**9:09d}",
                         "issuing_country": "JM"}],
        "phones": [f"+1876{tick % 10**7:07d}"],
        "emails": [],
        "addresses": [{"line": f"{golden_version} Main Road", "parish": PARISHES[tick % 6],
                       "country": "JM"}],
        "classification": "SENSITIVE",
        "first_seen": EPOCH,
        "last_updated": changed,
        "sources": [
            {"agency_id": agency_id, "source_record_id": record_id,
             "source_version": golden_version, "event_time": changed, "deleted": False}
            for agency_id, record_id in person.sources
        ],
        "lineage": [
            {"field": field, "agency_id": agency, "source_record_id": record,
             "source_version": golden_version, "event_time": changed}
            for field in ("given_name", "family_name", "date_of_birth", "sex", "phones",
                          "addresses")
        ],
    }


def synthetic_batches(
    changes: int, keys: int, batch_size: int, seed: int
) -> Iterator[tuple[list[Message], dict[int, dict[str, Any] | None]]]:
    """Batches of (messages, offset -> decoded value); about changes/keys changes per key,
    in random order, 1% of them tombstones."""
    rng = random.Random(seed)
    people = synthetic_people(keys, rng)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(keys)]
    versions = [0] * keys
    offset = 0
    while offset < changes:
        messages, values = [], {}
        for _ in range(min(batch_size, changes - offset)):
            index = rng.randrange(keys)
            versions[index] += 1
            tombstone = rng.random() < TOMBSTONE_SHARE
            values[offset] = None if tombstone else golden_person(
                people[index], versions[index], offset
            )
            messages.append(Message(TOPIC, 0, offset, ids[index].encode(), b"" if not tombstone
                                    else None))
            offset += 1
        yield messages, values


def _lookup(values: dict[int, dict[str, Any] | None]) -> Decode:
    """The bench's stand-in for Avro decoding: the dict generated for that offset."""

    def decode(message: Message, _output: str) -> dict[str, Any] | None:
        return values[message.offset]

    return decode


def time_sink(connection: psycopg.Connection, batches: Any) -> tuple[float, int, int]:
    """Seconds spent in the write path, changes consumed, changes written after reduction."""
    store.prepare_session(connection, [PERSON])
    seconds, consumed, written, expected = 0.0, 0, 0, None
    for messages, values in batches:
        started = time.perf_counter()
        prepared = prepare_batch(messages, {TOPIC: "person"}, _lookup(values))
        ((position, next_offset),) = prepared.next_offsets.items()
        with connection.transaction():
            store.write_entity(connection, PERSON, prepared.changes.get("person", []))
            store.advance_offsets(connection, "bench", [
                store.OffsetAdvance(*position, expected, next_offset)
            ])
        seconds += time.perf_counter() - started
        expected = next_offset
        consumed += len(messages)
        written += prepared.change_count
    return seconds, consumed, written


def time_copy_ceiling(connection: psycopg.Connection, batches: Any) -> tuple[float, int]:
    """Seconds to convert and COPY every change, unreduced, into an unindexed table."""
    statements = store.statements_for(PERSON)
    with connection.transaction():
        # The sink's incoming table as an ordinary (logged) table: same columns, no index.
        connection.execute(statements.create_temporary[0].replace(
            "CREATE TEMPORARY TABLE IF NOT EXISTS incoming_", "CREATE TABLE ceiling_"
        ))
    copy_statement = statements.copy_incoming.replace("COPY incoming_", "COPY ceiling_")
    seconds, rows = 0.0, 0
    for messages, values in batches:
        started = time.perf_counter()
        changes = [
            golden_rows(PERSON, golden_id_of(message.key), values[message.offset])
            for message in messages
        ]
        with connection.transaction(), connection.cursor() as cursor:
            store.copy_rows(cursor, copy_statement, store.incoming_rows(changes))
        seconds += time.perf_counter() - started
        rows += len(changes)
    return seconds, rows


def run_benchmark(
    settings: Settings, changes: int, keys: int, batch_size: int | None, seed: int
) -> int:
    batch_size = batch_size or SinkOptions().batch_size
    print(f"tipsync bench sink: {changes:,} reconciled person changes over {keys:,} golden ids,"
          f" batches of {batch_size:,}, 1% tombstones")
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}; PostgreSQL at"
          f" 127.0.0.1:{settings.postgres_port} (same machine)")
    with scratch_database(settings.database_url, "bench") as database_url:
        migrate(database_url)
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute("SET TIME ZONE 'UTC'")
            sink_seconds, consumed, written = time_sink(
                connection, synthetic_batches(changes, keys, batch_size, seed)
            )
            people = connection.execute("SELECT count(*) FROM reconciled.person").fetchone()
            sources = connection.execute(
                "SELECT count(*) FROM reconciled.person_source"
            ).fetchone()
            sink_rate = consumed / sink_seconds
            print(f"sink write path : {consumed:>10,} changes in {sink_seconds:7.2f} s"
                  f" = {sink_rate:>9,.0f} changes/s ({written:,} rows after per-batch"
                  f" reduction; store holds {people[0] if people else 0:,} people,"
                  f" {sources[0] if sources else 0:,} source records)", flush=True)
            ceiling_seconds, copied = time_copy_ceiling(
                connection, synthetic_batches(changes, keys, batch_size, seed)
            )
            ceiling_rate = copied / ceiling_seconds
            print(f"COPY ceiling    : {copied:>10,} changes in {ceiling_seconds:7.2f} s"
                  f" = {ceiling_rate:>9,.0f} changes/s (plain COPY into an unindexed table,"
                  " no reduction)")
            print(f"ratio sink / ceiling: {sink_rate / ceiling_rate:.2f}"
                  "   (goals: >= 50,000 changes/s and >= 0.5)", flush=True)
    return 0
