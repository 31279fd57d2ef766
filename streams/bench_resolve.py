"""``tipsync bench resolve``: the resolve stage in-process, the ceiling of the stream's resolve.

No Kafka and no registry: ``ResolveStage.apply`` (the ``Resolver`` plus the stage's outputs)
is fed the invented people of ``tipsync bench stream`` (same names, a TRN each, a share also
known to a second agency), one record at a time, as the worker feeds it:

1. ``--people`` people are loaded (their records resolved, outputs built and dropped);
2. like the worker after its rebuild, what is alive is moved out of the garbage collector's
   way (``gc.freeze``, see ``streams.app.FREEZE_EVERY_RECORDS``);
3. ``--burst`` new people are resolved one at a time and timed: records per second of wall
   clock and per CPU second of this process (the machine is shared), the time per record
   (p50, p99, max) and the time spent in full garbage collections.

Figures are printed, and a JSON line of them last.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import statistics
import time
from collections.abc import Iterator
from typing import Any

from schemas.agencies import load_agencies
from streams.bench_stream import person_event
from streams.ingest import AgencyEvent, check_event
from streams.resolve import Resolver
from streams.resolve_stage import ResolveStage, trust_ranks


def register_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--people", type=int, default=100_000, help="people resolved first")
    parser.add_argument("--burst", type=int, default=5_000, help="new people, timed")
    parser.add_argument("--duplicates", type=float, default=0.2,
                        help="share of the first people also known to a second agency")
    parser.add_argument("--seed", type=int, default=11)


def checked_people(
    indexes: range, rng: random.Random, duplicate_share: float
) -> Iterator[AgencyEvent]:
    """Person events as ingest passes them on (checked against their topic and key)."""
    for index in indexes:
        agencies = ["police-ctu"]
        if rng.random() < duplicate_share:
            agencies.append("immigration")
        for agency_id in agencies:
            event = person_event(index, agency_id, rng)
            key = f"{agency_id}:{event['source_record_id']}".encode()
            yield check_event(agency_id, "person", key, event)


class _FullCollections:
    """Wall time spent in full (generation 2) garbage collections while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.count = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.count += 1


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    trust = trust_ranks(load_agencies())
    stage = ResolveStage(lambda: Resolver(trust))
    offset = 0
    started = time.perf_counter()
    for event in checked_people(range(args.people), rng, args.duplicates):
        stage.apply(event, offset)
        offset += 1
    load_seconds = time.perf_counter() - started
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"resolve: {args.people:,} people ({offset:,} source records) resolved in "
          f"{load_seconds:.1f} s ({offset / load_seconds:,.0f} records/s); peak RSS "
          f"{rss_mib:,.0f} MiB", flush=True)

    burst = list(checked_people(range(args.people, args.people + args.burst), rng, 0.0))
    gc.freeze()
    collections = _FullCollections()
    gc.callbacks.append(collections)
    pairs_before = stage.resolver.pairs_scored
    times: list[float] = []
    cpu_started, started = time.process_time(), time.perf_counter()
    try:
        for event in burst:
            before = time.perf_counter()
            stage.apply(event, offset)
            times.append(time.perf_counter() - before)
            offset += 1
    finally:
        gc.callbacks.remove(collections)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    quantiles = statistics.quantiles(times, n=100)
    result = {
        "people": args.people, "source_records": offset - len(burst),
        "load_records_per_second": round((offset - len(burst)) / load_seconds),
        "burst": len(burst), "burst_records_per_second": round(len(burst) / seconds),
        "burst_records_per_cpu_second": round(len(burst) / cpu),
        "ms_p50": round(quantiles[49] * 1000, 3), "ms_p99": round(quantiles[98] * 1000, 3),
        "ms_max": round(max(times) * 1000, 1),
        "pairs_scored_per_record": round((stage.resolver.pairs_scored - pairs_before)
                                         / len(burst), 1),
        "full_collections": collections.count,
        "full_collection_seconds": round(collections.seconds, 2),
        "peak_rss_mib": round(rss_mib),
    }
    print(f"resolve with {args.people:,} people resolved: {result['burst_records_per_second']:,} "
          f"records/s ({result['burst_records_per_cpu_second']:,} per CPU second) over "
          f"{len(burst):,} new people; per record p50 {result['ms_p50']} ms, p99 "
          f"{result['ms_p99']} ms, max {result['ms_max']} ms; "
          f"{result['pairs_scored_per_record']} candidate pairs scored per record; "
          f"{collections.count} full garbage collections ({collections.seconds:.2f} s)",
          flush=True)
    print(json.dumps(result), flush=True)
    return 0
