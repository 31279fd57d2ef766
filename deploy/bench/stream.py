"""``tipsync bench stream``: the stream app through Kafka, with real worker processes.

1. **ingest**: ``--events`` case UPSERTs are published first, then one worker starts; the rate
   is counted on its output (``reconciled.case``) from the first golden record to the last,
   so start-up is not in the figure. Cases take the whole ingest path: decode, checks, the
   held-version table and its changelog, the golden record encoded and published.
2. **resolve**: ``--people`` synthetic people (a share of them known to two agencies, with the
   same TRN) are published and resolved first; then ``--burst`` new person events at once
   (throughput: records/s from the first output to the last) and ``--paced`` more at
   ``--rate`` per second (latency: output time minus publish time, per record, end to end
   through ingest, the resolve topic and resolve). Worker memory is read from /proc before
   and after the people are loaded.

   With ``--preload N`` the people are not sent through ingest (a million would take most of
   an hour): before the worker starts, N invented people go straight onto the bench's
   ``<prefix>.internal.resolve`` topic, as ingest forwards them (key
   ``person:<agency>:<source_record_id>``, the agency event's wire-format bytes), and the
   worker's consumer group is given offset N there, as if a worker had resolved them and
   died. The first person sent afterwards makes the worker rebuild its resolver from the
   topic (or from its snapshot, ``streams.snapshot``): the rebuild is timed, with the
   worker's memory after it. ``--restart`` then stops the worker after the burst and paced
   phases and times two restarts (to the first new person's mapping): one from the snapshot
   the worker wrote, one with the snapshot deleted (the whole topic replayed).

Every topic has a prefix of its own and is deleted at the end. Figures are printed, and a
JSON line of them last.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from deploy.bench.stream_harness import StreamHarness
from deploy.demo.names import FAMILY, FEMALE_GIVEN, MALE_GIVEN
from schemas.config import load_settings
from schemas.topics import TopicSettings, TopicSpec, compacted_config, create_topics
from streams.snapshot import REBUILT_LINE, snapshot_directory

# tipsync's invented name lists (deploy/demo): ~220 given and ~160 family names, so a new
# person shares a name with a realistic share of the others, not with hundreds of them.
GIVEN_NAMES = {
    "FEMALE": tuple(n for names in FEMALE_GIVEN.values() for n in names),
    "MALE": tuple(n for names in MALE_GIVEN.values() for n in names),
}
FAMILY_NAMES = tuple(n for names in FAMILY.values() for n in names)
PARISHES = ("KINGSTON", "ST_ANDREW", "ST_CATHERINE", "CLARENDON", "ST_JAMES", "MANCHESTER")
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def register_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=100_000, help="case events for ingest")
    parser.add_argument("--people", type=int, default=100_000, help="people resolved first")
    parser.add_argument("--burst", type=int, default=10_000, help="new people, all at once")
    parser.add_argument("--paced", type=int, default=5_000, help="new people, paced")
    parser.add_argument("--rate", type=int, default=200, help="paced events per second")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--store", choices=("rocksdb", "memory"), default="rocksdb")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-resolve", action="store_true")
    parser.add_argument("--preload", type=int, default=0, metavar="N",
                        help="put N people straight onto the resolve topic as already resolved "
                             "(instead of --people through ingest) and time the rebuild")
    parser.add_argument("--restart", action="store_true",
                        help="with --preload: at the end, time a restart from the worker's "
                             "snapshot and one from the topic alone")


def envelope(agency_id: str, record_id: str, version: int, moment: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "agency_id": agency_id, "source_record_id": record_id,
        "op": "UPSERT", "source_version": version, "event_time": moment,
        "produced_at": datetime.now(UTC), "classification": "SENSITIVE",
        "legal_basis": "PUBLIC_FUNCTION", "consent_ref": None, "retention_until": None,
    }


def case_event(index: int) -> dict[str, Any]:
    event = envelope("police-ctu", f"C-{index:08d}", 1, EPOCH + timedelta(seconds=index))
    event["payload"] = {
        "case_ref": f"CTU-{index:08d}", "title": "Synthetic benchmark case", "status": "OPEN",
        "opened_on": None, "closed_on": None, "forms_of_exploitation": ["LABOUR"],
        "parish": "KINGSTON", "summary": None,
    }
    return event


def person_event(index: int, agency_id: str, rng: random.Random) -> dict[str, Any]:
    """Synthetic person ``index``; the same index at two agencies is the same person."""
    person = random.Random(index)  # the person's facts depend on the index only
    sex = person.choice(("FEMALE", "MALE"))
    given, family = person.choice(GIVEN_NAMES[sex]), person.choice(FAMILY_NAMES)
    middle = person.choice(GIVEN_NAMES[sex]) if person.random() < 0.4 else None
    year = person.randint(1950, 2012)
    event = envelope(agency_id, f"{agency_id[:3].upper()}-{index:08d}", 1,
                     EPOCH + timedelta(seconds=index + rng.randint(0, 1000)))
    event["payload"] = {
        "given_name": given, "middle_name": middle, "family_name": family, "aliases": [],
        "date_of_birth": f"{year}-{person.randint(1, 12):02d}-{person.randint(1, 28):02d}",
        "dob_precision": "DAY", "sex": sex,
        "citizenship": ["JM"],
        "identifiers": [{"scheme": "TRN", "value": f"{100_000_000 + index:09d}",
                         "issuing_country": "JM"}],
        "phones": [], "emails": [f"{given.lower()}.{family.lower()}{index}@example.org"],
        "addresses": [{"line": f"{person.randint(1, 200)} Main Road",
                       "parish": person.choice(PARISHES), "country": "JM"}],
    }
    return event


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    figures: dict[str, Any] = {}
    if not args.skip_ingest:
        figures["ingest"] = bench_ingest(settings, args)
    if not args.skip_resolve:
        figures["resolve"] = bench_resolve(settings, args)
    print(json.dumps(figures), flush=True)
    return 0


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (a shared machine's load aside)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_ingest(settings: Any, args: argparse.Namespace) -> dict[str, Any]:
    harness = StreamHarness(settings, agencies=("police-ctu",), entities=("case",),
                            partitions=args.partitions).setup()
    try:
        started = time.monotonic()
        for index in range(args.events):
            harness.publish("case", case_event(index))
            if index % 10_000 == 0:
                harness.producer.poll(0)
        harness.flush()
        print(f"ingest: published {args.events} case events in "
              f"{time.monotonic() - started:.1f} s", flush=True)
        worker = harness.start_worker(store=args.store)
        first_time = first_count = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            count = harness.count(harness.topics.reconciled("case"))
            now = time.monotonic()
            if count and first_time is None:
                first_time, first_count = now, count
                first_cpu = _cpu_seconds(worker.pid)
            if count >= args.events:
                break
            time.sleep(0.2)
        else:
            raise TimeoutError("ingest did not finish within 10 minutes")
        assert first_time is not None and first_count is not None
        seconds = now - first_time
        cpu = _cpu_seconds(worker.pid) - first_cpu
        rss = _rss_mib(worker.pid)
        harness.stop_worker(worker)
        rate = (args.events - first_count) / seconds if seconds else float("inf")
        result = {"events": args.events, "seconds": round(seconds, 2),
                  "events_per_second": round(rate),
                  "events_per_cpu_second": round((args.events - first_count) / cpu),
                  "worker_rss_mib": round(rss),
                  "store": args.store, "partitions": args.partitions,
                  # the machine is shared: figures move with its load
                  "load_average": " ".join(f"{load:.2f}" for load in os.getloadavg())}
        print(f"ingest: {rate:,.0f} events/s on one worker, "
              f"{result['events_per_cpu_second']:,} per CPU second of the worker "
              f"({args.events} events, {args.store} table, worker RSS {rss:.0f} MiB, "
              f"load average {result['load_average']})",
              flush=True)
        return result
    finally:
        harness.teardown()


def _committed(harness: StreamHarness) -> int:
    consumer = Consumer(
        harness.settings.client.librdkafka({"group.id": harness.topics.stream_group})
    )
    try:
        [partition] = consumer.committed(
            [TopicPartition(harness.topics.resolve, 0)], timeout=10
        )
        return max(partition.offset, 0)
    finally:
        consumer.close()


def _wait_resolved(harness: StreamHarness, total: int, timeout: float) -> None:
    harness.wait_for(
        lambda: harness.count(harness.topics.resolve) >= total and _committed(harness) >= total,
        timeout=timeout, what=f"{total} people resolved",
    )


def _publish_people(harness: StreamHarness, indexes: range, rng: random.Random,
                    duplicate_share: float) -> int:
    published = 0
    for index in indexes:
        harness.publish("person", person_event(index, "police-ctu", rng))
        published += 1
        if rng.random() < duplicate_share:
            harness.publish("person", person_event(index, "immigration", rng))
            published += 1
        if published % 10_000 == 0:
            harness.producer.poll(0)
    harness.flush()
    return published


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _resolve_histogram(port: int) -> dict[float, float]:
    """Cumulative counts of the worker's resolve-time histogram: upper bound (s) -> count."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    buckets = {}
    for line in text.decode().splitlines():
        if line.startswith("tipsync_stream_resolve_seconds_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(bound)] = float(line.rsplit(" ", 1)[1])
    return buckets


def _quantile_bound(before: dict[float, float], after: dict[float, float], share: float) -> (
    float
):
    """The smallest bucket bound (ms) under which ``share`` of the records between two
    scrapes fell: "p99 <= this"."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts[float("inf")]
    for bound, count in counts.items():
        if count >= share * total:
            return bound * 1000
    return float("inf")


def _preload_people(harness: StreamHarness, people: int, rng: random.Random) -> int:
    """Put ``people`` invented people (a fifth also at a second agency) straight onto the
    resolve topic, as ingest forwards them, and give the worker's consumer group the offset
    after them: to the worker they are people resolved before it (re)started. Returns the
    number of source records (messages) put there."""
    topic = harness.topics.resolve
    create_topics(harness.settings.client, [
        TopicSpec(topic, 1, TopicSettings.from_environment().replication_factor,
                  compacted_config()),
    ])
    started = time.monotonic()
    records = 0
    for index in range(people):
        agencies = ["police-ctu", "immigration"] if rng.random() < 0.2 else ["police-ctu"]
        for agency_id in agencies:
            event = person_event(index, agency_id, rng)
            key = f"person:{agency_id}:{event['source_record_id']}".encode()
            harness.publish_raw(topic, key, harness.encode("person", event))
            records += 1
            if records % 10_000 == 0:
                harness.producer.poll(0)
    harness.flush()
    group = harness.topics.stream_group
    admin = AdminClient(harness.settings.client.librdkafka())
    futures = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, records)])]
    )
    for future in futures.values():
        future.result()
    print(f"resolve: preloaded {people} people ({records} source records) onto {topic} in "
          f"{time.monotonic() - started:.0f} s; group {group} at offset {records}", flush=True)
    return records


def _time_first_person(harness: StreamHarness, index: int, rng: random.Random,
                       timeout: float) -> float:
    """Send one new person through ingest and wait for its mapping: after a (re)start, the
    time the worker needs before it resolves anything (its rebuild included)."""
    event = person_event(index, "police-ctu", rng)
    key = f"police-ctu:{event['source_record_id']}"
    started = time.monotonic()
    harness.publish("person", event)
    harness.flush()
    harness.wait_for(lambda: key in _output_times(harness, {key}), timeout=timeout,
                     what=f"the mapping of person {index}")
    return time.monotonic() - started


def _logged_rebuild(harness: StreamHarness) -> dict[str, Any]:
    """The worker's own account of its last rebuild (from its log)."""
    found: dict[str, Any] = {}
    for line in harness.worker_log().splitlines():
        match = REBUILT_LINE.search(line)
        if match:
            found = {"rebuild_from": match.group("source"),
                     "rebuild_records": int(match.group("records")),
                     "rebuild_seconds_logged": float(match.group("seconds"))}
    return found


def bench_resolve(settings: Any, args: argparse.Namespace) -> dict[str, Any]:
    harness = StreamHarness(settings, agencies=("police-ctu", "immigration"),
                            entities=("person",), partitions=args.partitions).setup()
    rng = random.Random(11)
    try:
        port = _free_port()
        extra = ["--metrics-port", str(port)]
        result: dict[str, Any] = {}
        if args.preload:
            people = args.preload
            loaded = _preload_people(harness, people, rng)
            worker = harness.start_worker(store=args.store, extra=extra)
            time.sleep(8)  # let it join the group before measuring its idle memory
            idle_rss = _rss_mib(worker.pid)
            load_seconds = _time_first_person(harness, people, rng, timeout=7200)
            loaded += 1
            people += 1
            loaded_rss = _rss_mib(worker.pid)
            result.update(_logged_rebuild(harness))
            result["rebuild_seconds_to_first_output"] = round(load_seconds, 1)
            print(f"resolve: rebuild of {loaded - 1} records: {load_seconds:.0f} s to the "
                  f"first new person's mapping ({(loaded - 1) / load_seconds:,.0f} records/s; "
                  f"the worker logged {result.get('rebuild_seconds_logged', float('nan')):.0f}"
                  f" s for the rebuild itself); worker RSS {idle_rss:.0f} -> "
                  f"{loaded_rss:.0f} MiB; load average {_load_average()}", flush=True)
        else:
            people = args.people
            worker = harness.start_worker(store=args.store, extra=extra)
            time.sleep(8)  # let it join the group before measuring its idle memory
            idle_rss = _rss_mib(worker.pid)
            started = time.monotonic()
            loaded = _publish_people(harness, range(people), rng, 0.2)
            _wait_resolved(harness, loaded, timeout=7200)
            load_seconds = time.monotonic() - started
            loaded_rss = _rss_mib(worker.pid)
            print(f"resolve: {people} people ({loaded} source records) loaded and resolved "
                  f"in {load_seconds:.0f} s; worker RSS {idle_rss:.0f} -> {loaded_rss:.0f} MiB",
                  flush=True)

        base = people
        cpu_before = _cpu_seconds(worker.pid)
        histogram_before = _resolve_histogram(port)
        burst_load = _load_average()
        burst = _publish_people(harness, range(base, base + args.burst), rng, 0.0)
        _wait_resolved(harness, loaded + burst, timeout=3600)
        burst_cpu = _cpu_seconds(worker.pid) - cpu_before
        histogram_burst = _resolve_histogram(port)
        burst_keys = {f"police-ctu:POL-{index:08d}" for index in range(base, base + burst)}
        burst_times = list(_output_times(harness, burst_keys).values())
        burst_rate = len(burst_times) / ((max(burst_times) - min(burst_times)) / 1000)

        base += args.burst
        sent: dict[str, float] = {}
        interval = 1.0 / args.rate
        next_time = time.monotonic()
        for index in range(base, base + args.paced):
            event = person_event(index, "police-ctu", rng)
            harness.publish("person", event)
            sent[f"police-ctu:{event['source_record_id']}"] = time.time() * 1000
            harness.producer.poll(0)
            next_time += interval
            delay = next_time - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        harness.flush()
        _wait_resolved(harness, loaded + burst + args.paced, timeout=3600)
        histogram_paced = _resolve_histogram(port)
        received = _output_times(harness, set(sent))
        latencies = [received[key] - sent[key] for key in received]
        final_rss = _rss_mib(worker.pid)
        harness.stop_worker(worker)
        base += args.paced
        if args.preload and args.restart:
            result.update(_time_restarts(harness, args, extra, base, rng))
        quantiles = statistics.quantiles(latencies, n=100)
        per_million = (loaded_rss - idle_rss) / people * 1_000_000
        result.update({
            "people": people, "source_records": loaded,
            "load_seconds": round(load_seconds, 1),
            "load_records_per_second": round(loaded / load_seconds),
            "burst": burst, "burst_records_per_second": round(burst_rate),
            "burst_records_per_cpu_second": round(burst / burst_cpu),
            "burst_load_average": burst_load,
            "paced": args.paced, "rate": args.rate,
            "latency_ms_p50": round(quantiles[49], 1), "latency_ms_p99": round(quantiles[98], 1),
            "latency_ms_max": round(max(latencies), 1),
            "resolve_ms_p50_at_most_burst": _quantile_bound(histogram_before, histogram_burst,
                                                            0.50),
            "resolve_ms_p99_at_most_burst": _quantile_bound(histogram_before, histogram_burst,
                                                            0.99),
            "resolve_ms_p99_at_most_paced": _quantile_bound(histogram_burst, histogram_paced,
                                                            0.99),
            "resolve_ms_p50_at_most_paced": _quantile_bound(histogram_burst, histogram_paced,
                                                            0.50),
            "worker_rss_mib_idle": round(idle_rss), "worker_rss_mib_loaded": round(loaded_rss),
            "worker_rss_mib_final": round(final_rss),
            "mib_per_million_people": round(per_million), "store": args.store,
            "load_average": _load_average(),
        })
        print(f"resolve with {people} people resolved: {burst_rate:,.0f} records/s "
              f"(burst of {burst}; {burst / burst_cpu:,.0f} per CPU second of the worker, "
              f"ingest of the same records included; resolve time per record p50 <= "
              f"{result['resolve_ms_p50_at_most_burst']:g} ms, p99 <= "
              f"{result['resolve_ms_p99_at_most_burst']:g} ms; load average {burst_load}); "
              f"end-to-end latency at {args.rate}/s: p50 {quantiles[49]:.1f} ms, p99 "
              f"{quantiles[98]:.1f} ms; resolve time per record p99 <= "
              f"{result['resolve_ms_p99_at_most_paced']:g} ms; memory {per_million:,.0f} MiB "
              f"per million people", flush=True)
        return result
    finally:
        harness.teardown()


def _time_restarts(harness: StreamHarness, args: argparse.Namespace, extra: list[str],
                   index: int, rng: random.Random) -> dict[str, Any]:
    """Restart the stopped worker twice, from its snapshot and then without it, and time
    each to its first new output."""
    figures: dict[str, Any] = {}
    snapshots = snapshot_directory(
        harness.settings.home / "streams" / harness.topics.stream_group / "worker-0"
    )
    for label in ("snapshot", "topic"):
        if label == "topic":
            for path in snapshots.glob("*"):
                path.unlink()
        elif not any(snapshots.glob("*")):
            print("resolve: the worker left no snapshot; restart from it not timed", flush=True)
            continue
        worker = harness.start_worker(store=args.store, extra=extra)
        seconds = _time_first_person(harness, index, rng, timeout=7200)
        index += 1
        rebuild = _logged_rebuild(harness)
        figures[f"restart_from_{label}_seconds"] = round(seconds, 1)
        figures[f"restart_from_{label}_rss_mib"] = round(_rss_mib(worker.pid))
        print(f"resolve: restart from the {label}: {seconds:.0f} s to the first new person's "
              f"mapping (the worker logged {rebuild}); worker RSS "
              f"{figures[f'restart_from_{label}_rss_mib']} MiB; load average "
              f"{_load_average()}", flush=True)
        harness.stop_worker(worker)
    return figures


def _load_average() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def _output_times(harness: StreamHarness, keys: set[str]) -> (
    dict[str, float]
):
    """Source key -> timestamp (ms) of its first mapping message, for the keys asked."""
    topic = harness.topics.person_mapping
    total = harness.count(harness.topics.person_mapping)
    consumer = Consumer(harness.settings.client.librdkafka(
        {"group.id": f"{harness.prefix}-times", "enable.auto.commit": False}
    ))
    found: dict[str, float] = {}
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, partition, 0) for partition in metadata.partitions])
        seen = 0
        deadline = time.monotonic() + 600
        while seen < total and time.monotonic() < deadline:
            for message in consumer.consume(10_000, timeout=1.0):
                if message.error():
                    continue
                seen += 1
                key = bytes(message.key() or b"").decode()
                if key in keys and key not in found:
                    found[key] = float(message.timestamp()[1])
        return found
    finally:
        consumer.close()
