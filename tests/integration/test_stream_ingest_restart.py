"""A restarted worker still knows what it took: ingest's table comes back from its changelog
(real stack, real worker processes, topics of this module's own).

Ingest writes its table's changelog itself (``streams.ingest_handler``'s
``IngestHandler._hold``), so this pins what faust would otherwise guarantee: a worker
restarted on its RocksDB state reads the changelog from the offset it noted, and a worker
without local state reads it all.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.bench.stream_harness import StreamHarness
from schemas.config import Settings
from schemas.examples import example_event, example_uuid
from streams.ingest import entity_golden_id

# Out of ``make test`` for now (``make faults`` runs it): its three restarts of one worker
# failed in two fresh-clone runs of four this session, once a restarted worker that consumed
# nothing for 90 s (the stall docs/OPERATIONS.md describes), once a replay passed on once too
# few (faust skipping a message after a restart). Both are open under issue 13.
pytestmark = pytest.mark.faults

POLICE = "police-ctu"
RECORDS = [f"C-{index}" for index in range(20)]


def _case(record: str, version: int) -> dict[str, Any]:
    return example_event("case", POLICE, record, source_version=version,
                         event_id=example_uuid(f"restart:{record}:{version}"))


def _run_once(harness: StreamHarness, store: str) -> None:
    worker = harness.start_worker(store=store)
    harness.wait_for(harness.caught_up, timeout=90, what=f"a run on the {store} table")
    assert harness.stop_worker(worker) == 0


def _versions(harness: StreamHarness) -> Counter[tuple[str, int]]:
    """(golden id, golden_version) -> how many times it was published."""
    return Counter(
        (message.key.decode(), harness.decode(message.value)["golden_version"])
        for message in harness.read(harness.topics.reconciled("case"))
        if message.key is not None and message.value is not None
    )


@pytest.fixture(scope="module")
def harness(stack: Settings) -> Iterator[StreamHarness]:
    harness = StreamHarness(stack, agencies=(POLICE,), entities=("case",)).setup()
    state = Path(stack.home) / "streams" / harness.topics.stream_group / "worker-0"
    try:
        for record in RECORDS:
            harness.publish("case", _case(record, 1))
        harness.flush()
        _run_once(harness, "rocksdb")
        # every event again (replays) and one new version, to a worker on its RocksDB state
        for record in RECORDS:
            harness.publish("case", _case(record, 1))
        harness.publish("case", _case("C-1", 2))
        harness.flush()
        _run_once(harness, "rocksdb")
        # the replays once more, to a worker with no local state: the whole changelog is read
        shutil.rmtree(state)
        for record in RECORDS:
            harness.publish("case", _case(record, 1))
        harness.flush()
        _run_once(harness, "memory")
        yield harness
    finally:
        harness.teardown()


def test_a_restarted_worker_knows_its_table_and_takes_new_versions(harness: StreamHarness) -> None:
    """A replay of a record's latest accepted version is sent again (its first output may
    have died with a killed worker, issue 13; downstream is idempotent), an older one never:
    C-1's version 1, replayed after version 2, is not published again by the worker that
    read the whole changelog. (How often the rest is published depends on what each run had
    committed when it stopped: at least once per run.)"""
    published = _versions(harness)
    case_one = entity_golden_id("case", POLICE, "C-1")
    assert set(published) == {
        *((entity_golden_id("case", POLICE, record), 1) for record in RECORDS),
        (case_one, 2),
    }
    history = [
        harness.decode(message.value)["golden_version"]
        for message in harness.read(harness.topics.reconciled("case"))
        if message.key == case_one.encode() and message.value is not None
    ]
    assert history[-1] == 2 and history.count(2) >= 1
    assert 1 not in history[history.index(2):]


def test_every_run_passes_on_a_replay_of_the_latest_version(harness: StreamHarness) -> None:
    """Each of the three runs is handed every replay and passes it on: at least three outputs
    per record. Out of ``make test`` (marker ``faults``, ``make faults``): in one fresh-clone
    run of four a record had two, which fits faust 0.15.3 skipping messages around the seek
    that ends a restart's rebalance and committing past them (read in its fetcher; issue 13,
    docs/OPERATIONS.md "What survives what"). Resolve now reads what faust skips; ingest has
    no such guard yet, so this stays here until it has one."""
    published = _versions(harness)
    case_one = entity_golden_id("case", POLICE, "C-1")
    assert all(count >= 3 for (golden, version), count in published.items()
               if golden != case_one)
