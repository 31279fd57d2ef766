"""``tipsync bench resolve``: the resolve stage in-process, the ceiling of the stream's resolve.

No Kafka and no registry: ``ResolveStage.apply`` (the ``Resolver`` plus the stage's outputs)
is fed the invented people of ``tipsync bench stream`` (same names, a TRN each, a share also
known to a second agency), one record at a time, as the worker feeds it:

1. ``--people`` people are loaded (their records resolved, outputs built and dropped);
2. like the worker after its rebuild, what is alive is moved out of the garbage collector's
   way (``gc.freeze``, see ``streams.recovery.FREEZE_EVERY_RECORDS``);
3. ``--burst`` new people are resolved one at a time and timed (``--updates``: a new version
   of that many loaded people's records instead): records per second of wall clock and per
   CPU second of this process (the machine is shared), the time per record (p50, p99, max)
   and the time spent in full garbage collections.

Memory: the process's resident size before and after the load, per person and per source
record; ``--memory-breakdown`` also walks the resolver's structures and prints the bytes each
holds (objects shared between structures count once, in the first). ``--block-sizes`` prints,
per blocking key kind, the block a record sits in on average and the share of records in
blocks past their cap (those yield no candidates). ``--profile PATH`` writes a cProfile of
the burst.

``--through-worker`` instead runs the people through a real worker on the stack and compares
it with each of its steps in-process (``deploy/bench/resolve_worker.py``).

Figures are printed, and a JSON line of them last.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import random
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deploy.bench.stream import person_event
from schemas.agencies import load_agencies
from streams.feeds import feed_messages
from streams.ingest import AgencyEvent, check_event
from streams.resolve import Resolver
from streams.resolve.blocking import cap_for
from streams.resolve_stage import ResolveStage, trust_ranks


def register_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--people", type=int, default=100_000, help="people resolved first")
    parser.add_argument("--burst", type=int, default=5_000, help="new people, timed")
    parser.add_argument("--updates", action="store_true",
                        help="the burst updates held people instead (a new e-mail address on "
                             "the police-ctu record of --burst people drawn from those loaded,"
                             " as bench e2e's steady phase does)")
    parser.add_argument("--duplicates", type=float, default=0.2,
                        help="share of the first people also known to a second agency")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--memory-breakdown", action="store_true",
                        help="after the load, print the bytes each resolver structure holds "
                             "(slow at a million people: it visits every object)")
    parser.add_argument("--block-sizes", action="store_true",
                        help="after the load, print per blocking key kind how full its blocks "
                             "are and how many records sit in blocks past the cap")
    parser.add_argument("--feeds", action="store_true",
                        help="also make the agencies' feed messages of every burst output "
                             "(streams.feeds, serialization left out), timed apart")
    parser.add_argument("--profile", metavar="PATH",
                        help="write a cProfile of the timed burst to PATH (pstats format)")
    parser.add_argument("--through-worker", action="store_true",
                        help="instead: --people put on a resolve topic and resolved by a real "
                             "worker, against each of its steps in-process on the same records "
                             "(deploy/bench/resolve_worker.py; needs the stack)")
    parser.add_argument("--profile-worker", metavar="PATH",
                        help="with --through-worker: sample the worker with py-spy into PATH "
                             "(.json: speedscope, else a flamegraph .svg)")
    parser.add_argument("--baseline-code", type=Path, metavar="DIR",
                        help="with --through-worker: also run the worker from the checkout DIR "
                             "(e.g. `git archive` of main), alternating with this one")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --through-worker: worker runs per checkout (default 1)")
    parser.add_argument("--worker-argument", action="append", metavar="ARG",
                        help="with --through-worker: one more argument for tipsync stream "
                             "(repeat it)")


def updated_people(count: int, people: int, rng: random.Random) -> Iterator[AgencyEvent]:
    """Version 2 of ``count`` loaded people's police-ctu record: a new e-mail address."""
    for index in rng.sample(range(people), min(count, people)):
        event = person_event(index, "police-ctu", rng)
        event["source_version"] = 2
        event["payload"]["emails"] = [f"person{index}.new@example.org"]
        key = f"police-ctu:{event['source_record_id']}".encode()
        yield check_event("police-ctu", "person", key, event)


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


def resident_bytes() -> int:
    """The process's resident memory now (not its peak)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def deep_sizes(owner: object) -> dict[str, int]:
    """Bytes reachable from each attribute of ``owner``, each object counted once.

    Classes, functions and modules are not followed (they are code, not data held per person).
    """
    seen: set[int] = {id(owner)}
    sizes: dict[str, int] = {}
    skip = (type, type(sys), type(deep_sizes))
    for name, value in vars(owner).items():
        total = 0
        pending = [value]
        while pending:
            item = pending.pop()
            if id(item) in seen or isinstance(item, skip):
                continue
            seen.add(id(item))
            total += sys.getsizeof(item)
            pending.extend(gc.get_referents(item))
        sizes[name] = total
    return sizes


def print_block_sizes(resolver: Resolver) -> None:
    """Per key kind: blocks, the mean block a record sits in, records in blocks past the cap."""
    blocks: dict[str, list[int]] = {}
    for block_key, block in resolver._blocks.blocks.items():
        size = 1 if isinstance(block, str) else len(block)
        blocks.setdefault(block_key.split(":", 1)[0], []).append(size)
    for kind, sizes in sorted(blocks.items()):
        cap = cap_for(f"{kind}:", resolver.block_size_cap)
        memberships = sum(sizes)
        past = sum(size for size in sizes if size > cap)
        print(f"  {kind:<16} {len(sizes):>10,} blocks, cap {cap:>3}: a record's block has "
              f"{sum(size * size for size in sizes) / memberships:10,.1f} members on average; "
              f"{past / memberships:6.1%} of records in blocks past the cap", flush=True)


def run(args: argparse.Namespace) -> int:
    if args.through_worker:
        from deploy.bench.resolve_worker import run_through_worker

        return run_through_worker(args)
    rng = random.Random(args.seed)
    agencies = load_agencies()
    trust = trust_ranks(agencies)
    stage = ResolveStage(lambda: Resolver(trust))
    offset = 0
    gc.collect()
    rss_before = resident_bytes()
    started = time.perf_counter()
    cpu_started = time.process_time()
    for event in checked_people(range(args.people), rng, args.duplicates):
        stage.apply(event, offset)
        offset += 1
    load_seconds = time.perf_counter() - started
    load_cpu = time.process_time() - cpu_started
    gc.collect()
    rss_after = resident_bytes()
    held = rss_after - rss_before
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"resolve: {args.people:,} people ({offset:,} source records) resolved in "
          f"{load_seconds:.1f} s ({offset / load_seconds:,.0f} records/s, "
          f"{offset / load_cpu:,.0f} per CPU second); resident memory "
          f"{rss_before / 2**20:,.0f} -> {rss_after / 2**20:,.0f} MiB: "
          f"{held / args.people:,.0f} bytes per person, {held / offset:,.0f} per source record "
          f"({held / args.people * 1e6 / 2**30:.2f} GiB per million people); peak RSS "
          f"{rss_mib:,.0f} MiB; load average {_load_average()}", flush=True)
    if args.block_sizes:
        print_block_sizes(stage.resolver)
    if args.memory_breakdown:
        sizes = deep_sizes(stage.resolver)
        for name, size in sorted(sizes.items(), key=lambda item: -item[1]):
            if size:
                print(f"  {name:<24} {size / 2**20:9,.1f} MiB  {size / offset:7,.0f} bytes "
                      "per source record", flush=True)

    burst = list(updated_people(args.burst, args.people, rng) if args.updates else
                 checked_people(range(args.people, args.people + args.burst), rng, 0.0))
    gc.freeze()
    collections = _FullCollections()
    gc.callbacks.append(collections)
    pairs_before = stage.resolver.pairs_scored
    times: list[float] = []
    cpu_times: list[float] = []  # a slow record with little CPU time waited for a core
    profiler = cProfile.Profile() if args.profile else None
    feed_seconds, feed_cpu, feed_messages_made = 0.0, 0.0, 0
    outputs_by_kind: Counter[str] = Counter()
    cpu_started, started = time.process_time(), time.perf_counter()
    try:
        if profiler:
            profiler.enable()
        for event in burst:
            before, cpu_before = time.perf_counter(), time.thread_time()
            outputs = stage.apply(event, offset)
            times.append(time.perf_counter() - before)
            cpu_times.append(time.thread_time() - cpu_before)
            outputs_by_kind.update(output.kind for output in outputs)
            offset += 1
            if args.feeds:
                feed_started, feed_cpu_started = time.perf_counter(), time.process_time()
                cache: dict[str, Any] = {}
                for output in outputs:
                    feed_messages_made += len(feed_messages(
                        output, stage.resolver, agencies, datetime.now(UTC), cache))
                feed_seconds += time.perf_counter() - feed_started
                feed_cpu += time.process_time() - feed_cpu_started
    finally:
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        gc.callbacks.remove(collections)
    seconds = time.perf_counter() - started - feed_seconds
    cpu = time.process_time() - cpu_started - feed_cpu
    quantiles = statistics.quantiles(times, n=1000)
    result = {
        "people": args.people, "source_records": offset - len(burst),
        "load_records_per_second": round((offset - len(burst)) / load_seconds),
        "load_seconds": round(load_seconds, 1),
        "bytes_per_person": round(held / args.people),
        "bytes_per_source_record": round(held / (offset - len(burst))),
        "burst": len(burst), "burst_kind": "updates" if args.updates else "new people",
        "burst_records_per_second": round(len(burst) / seconds),
        "burst_records_per_cpu_second": round(len(burst) / cpu),
        "ms_p50": round(quantiles[499] * 1000, 3), "ms_p99": round(quantiles[989] * 1000, 3),
        "ms_p999": round(quantiles[998] * 1000, 3),
        "ms_max": round(max(times) * 1000, 1),
        "ms_max_cpu": round(max(cpu_times) * 1000, 1),
        "ms_cpu_of_slowest": round(cpu_times[times.index(max(times))] * 1000, 1),
        "pairs_scored_per_record": round((stage.resolver.pairs_scored - pairs_before)
                                         / len(burst), 1),
        "outputs_per_record": {kind: round(count / len(burst), 2)
                               for kind, count in sorted(outputs_by_kind.items())},
        "full_collections": collections.count,
        "full_collection_seconds": round(collections.seconds, 2),
        "peak_rss_mib": round(rss_mib),
        "load_average": _load_average(),
    }
    print(f"resolve with {args.people:,} people resolved: {result['burst_records_per_second']:,} "
          f"records/s ({result['burst_records_per_cpu_second']:,} per CPU second) over "
          f"{len(burst):,} {'updates of held' if args.updates else 'new'} people; per record "
          f"p50 {result['ms_p50']} ms, p99 "
          f"{result['ms_p99']} ms, p99.9 {result['ms_p999']} ms, max {result['ms_max']} ms "
          f"(of it CPU "
          f"{result['ms_cpu_of_slowest']} ms; most CPU for one record {result['ms_max_cpu']} ms); "
          f"{result['pairs_scored_per_record']} candidate pairs scored per record; "
          f"outputs per record {result['outputs_per_record']}; "
          f"{collections.count} full garbage collections ({collections.seconds:.2f} s); "
          f"load average {result['load_average']}", flush=True)
    if args.feeds:
        result["feeds_us_per_record"] = round(feed_seconds / len(burst) * 1e6)
        result["feed_messages_per_record"] = round(feed_messages_made / len(burst), 2)
        print(f"agency feeds: {result['feeds_us_per_record']} us per record on top "
              f"({result['feed_messages_per_record']} messages per record, "
              "serialization not included)", flush=True)
    print(json.dumps(result), flush=True)
    return 0


def _load_average() -> str:
    """The 1, 5 and 15-minute load averages: the machine is shared, figures move with them."""
    with open("/proc/loadavg", encoding="ascii") as loadavg:
        return " ".join(loadavg.read().split()[:3])
