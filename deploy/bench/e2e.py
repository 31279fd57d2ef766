"""``tipsync bench e2e``: the whole pipeline, agency files to rows committed in PostgreSQL.

Two measurements on a private stack of its own (own state folder and ports, the shared
download cache), so it never disturbs the shared stack or another engineer's run:

(a) **backfill**: the synthetic task force of ``tipsync demo`` (about 1.9 person records per
    true person), every agency's PERSON export published with ``tipsync produce``, two
    producers at a time, while ``tipsync stream`` and ``tipsync sink`` run. The clock runs
    from the first publish to the commit of the last published person record in
    ``reconciled.person_source`` (PostgreSQL's commit timestamp of that row).
(b) **steady**: an in-process publisher (the producer's Python API, one agency) sends person
    updates at ``--steady-rate`` for ``--steady-seconds``, each with event_time = now.
    Freshness of a change = when its row was committed in ``reconciled.person_source``
    (``pg_xact_commit_timestamp(xmin)``; the poll time when commit timestamps are off)
    minus its event_time.

The generated data is cached under the benchmark's folder, so a rerun skips generation. The
private stack's state is wiped before a backfill (the producers' checkpoints would otherwise
publish nothing) and after a successful run unless ``--keep-stack``; ``--skip-backfill``
after a ``--keep-stack`` run measures the steady phase on the loaded store again.

After each phase's figures, a second table says where the CPU went during it
(``deploy/bench/cpu_time.py``, from /proc): the CPU seconds of each part (stream, split by
worker role with ``--stream-role split``; sink; the private stack's Kafka, registry and
PostgreSQL; the producers; this process; ``other``, the rest of the machine), per person record
published (backfill) or per change (steady), and in cores (CPU seconds over the phase's wall
seconds). Nothing is printed without /proc.

After the backfill, the in-process resolver on the same records (``deploy/bench/e2e_resolver.py``)
gives the ratio pipeline / resolver, and the backfill's ceiling on the machine's cores: the rate
the backfill would reach if the stream app cost no more than its resolver, every other part as
measured (no ratio above the ceiling's is reachable on this machine, whatever the stream app does).

Figures are printed as a table, then as one JSON line (the last line of the output).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from deploy.bench import cpu_time, e2e_hops
from deploy.bench.e2e_plaintext import plaintext_backfill
from deploy.bench.e2e_resolver import backfill_ceiling, resolver_rate
from deploy.bench.serde import cpu_model
from deploy.demo.generate import ExportFile, Manifest
from deploy.demo.live import LIVE_AGENCY
from deploy.demo.run import DEMO_SEED, demo_data
from deploy.operations.drive import (
    PIPELINE_GROUPS,
    ProduceResult,
    StepError,
    percentile,
    prepare,
    produce,
    say,
    wait_for_drain,
)
from deploy.operations.offsets import OffsetReader, OperationsError
from deploy.operations.supervisor import Pipeline, PipelineError
from deploy.stack.layout import BENCH_E2E_FOLDER, StackError
from deploy.stack.stack import LocalStack, prepare_benchmark_folder
from schemas import config
from schemas.config import Settings, load_settings
from schemas.topics import TOPICS, agency_topic
from streams.options import SPLIT

FULL_SIZE_PEOPLE = 525_000  # about 1,000,000 person records
PRODUCER_PROCESSES = 2
# Below Linux's ephemeral range (32768-60999): a port there can be taken at any moment by
# an outgoing connection's source port, and the broker then fails to bind it.
PRIVATE_PORTS = {"kafka": 30092, "registry": 30081, "postgres": 30432}
STACK_FOLDER = "stack"  # the private stack's state folder, inside the benchmark's folder
COUNT_EVERY_SECONDS = 1.0
PROGRESS_EVERY_SECONDS = 30.0
# After the producers finish, a person_source count that stays put this long means some
# records will never arrive (dead letters); the benchmark then waits for zero lag and ends.
STALL_SECONDS = 60.0
READY_TIMEOUT_SECONDS = 120.0
VISIBILITY_TIMEOUT_SECONDS = 60.0
POLL_RECORDS = 5_000
CHANGELOG_SUFFIX = "-changelog"  # faust names a table's changelog <app id>-<table>-changelog


class BenchError(Exception):
    """The benchmark cannot run as asked; the message names the input and the fix."""


# --------------------------------------------------------------------------- command


def register_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--people", type=int, default=FULL_SIZE_PEOPLE,
                        help=f"true people (about 1.9 person records each; default "
                             f"{FULL_SIZE_PEOPLE:,}, about 1M records)")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help="generator seed")
    parser.add_argument("--steady-rate", type=float, default=1000.0,
                        help="person updates per second in the steady phase (default 1000)")
    parser.add_argument("--steady-seconds", type=float, default=180.0,
                        help="length of the steady phase (default 180)")
    parser.add_argument("--skip-backfill", action="store_true",
                        help="keep the private store as it is (after a --keep-stack run)")
    parser.add_argument("--skip-steady", action="store_true")
    parser.add_argument("--keep-stack", action="store_true",
                        help="leave the private stack running, with its data, at the end")
    parser.add_argument("--stream-workers", type=int, default=1,
                        help="tipsync stream --workers (default 1)")
    parser.add_argument("--stream-role", default="all", choices=("all", SPLIT),
                        help="tipsync stream --role: all (default) or split (worker 0 resolves, "
                             "the others ingest; needs --stream-workers 2 or more)")
    parser.add_argument("--sink-batch-seconds", type=float, default=None,
                        help="tipsync sink --batch-seconds (default: the sink's own)")
    parser.add_argument("--plaintext", action="store_true",
                        help="after the secure run, wipe the private stack and run the same "
                             "backfill with Kafka in PLAINTEXT (issue 14's comparison)")
    parser.add_argument("--poll-interval", type=float, default=0.1,
                        help="seconds between visibility polls in the steady phase")
    parser.add_argument("--backfill-timeout", type=float, default=7200.0,
                        help="give up the backfill after this many seconds (default 7200)")
    parser.add_argument("--home", type=Path, default=None,
                        help=f"the benchmark's folder (default <{config.HOME}>/"
                             f"{BENCH_E2E_FOLDER}): generated data, and the private stack "
                             "under stack/")
    parser.add_argument("--kafka-port", type=int, default=PRIVATE_PORTS["kafka"])
    parser.add_argument("--registry-port", type=int, default=PRIVATE_PORTS["registry"])
    parser.add_argument("--postgres-port", type=int, default=PRIVATE_PORTS["postgres"])


def run_bench_e2e(args: argparse.Namespace) -> int:
    try:
        check_arguments(args)
        shared = load_settings()
        bench_home = (args.home or shared.home / BENCH_E2E_FOLDER).resolve()
        environment = private_environment(shared, bench_home / STACK_FOLDER, args)
        if Path(environment[config.HOME]) == shared.home:
            raise BenchError(
                f"--home {bench_home} would put the private stack in the shared state folder "
                f"{shared.home}; give a folder of its own"
            )
    except BenchError as error:
        print(f"tipsync bench e2e: {error}", file=sys.stderr)
        return 2
    try:
        prepare_benchmark_folder(shared, bench_home)
    except StackError as error:
        print(f"tipsync bench e2e: {error}", file=sys.stderr)
        return 2
    # Every step (and every ``tipsync`` process it starts) now talks to the private stack.
    os.environ.update(environment)
    settings = load_settings()
    stack = LocalStack(settings)
    figures: dict[str, Any] = {"benchmark": "e2e", "people": args.people,
                               "machine": machine(), "stack_home": str(settings.home)}
    succeeded = False
    try:
        if not args.skip_backfill:
            stack.reset()  # the private stack only: a backfill starts from an empty pipeline
        prepare(settings)
        manifest = demo_data(replace(settings, home=bench_home), args.people, args.seed)
        say(f"synthetic task force: {args.people:,} true people, "
            f"{manifest.counts.get('person records', 0):,} person records in "
            f"{manifest.out_dir}")
        stream_arguments = ["--metrics-port", "0", "--workers", str(args.stream_workers),
                            "--role", args.stream_role]
        sink_arguments = ([] if args.sink_batch_seconds is None
                          else ["--batch-seconds", str(args.sink_batch_seconds)])
        if not args.skip_backfill:
            warm_up(settings, stream_arguments)
        with Pipeline(settings, stream_arguments, sink_arguments) as pipeline:
            ready = wait_until_consuming(settings, pipeline)
            say(f"stream and sink consuming after {ready:.1f}s")
            roots = cpu_roots(pipeline)
            marks = cpu_time.StackMarks.of(settings.home)
            if not args.skip_backfill:
                cpu_before = cpu_time.snapshot()
                figures["backfill"] = backfill(settings, manifest, pipeline,
                                               args.backfill_timeout)
                add_cpu(figures["backfill"], cpu_before, roots, marks,
                        figures["backfill"]["person_records_published"])
                print_backfill(figures["backfill"])
                print_cpu(figures["backfill"], "person record")
            if not args.skip_steady:
                drained = wait_for_drain()
                pipeline.check()
                say(f"pipeline drained ({drained:.1f}s); steady phase: "
                    f"{args.steady_rate:g} updates/s for {args.steady_seconds:g}s")
                cpu_before = cpu_time.snapshot()
                resolving = MainThread.of(resolve_worker(roots))
                steady_began_ms = int(time.time() * 1000)
                figures["steady"] = steady(settings, manifest, args)
                add_cpu(figures["steady"], cpu_before, roots, marks,
                        figures["steady"]["published"])
                if resolving is not None:
                    figures["steady"]["resolve_main_thread"] = resolving.since()
                pipeline.check()
                figures["steady"]["hops"] = steady_hops(settings, steady_began_ms)
                print_steady(figures["steady"])
                print_cpu(figures["steady"], "change")
        if "backfill" in figures:
            # After the pipeline stopped, so that the two do not share the cores.
            figures["resolver"] = resolver_rate(settings, manifest)
            figures["pipeline_over_resolver"] = pipeline_over_resolver(figures)
            figures["backfill_ceiling"] = backfill_ceiling(
                figures["backfill"].get("cpu", {}), figures["resolver"], os.cpu_count() or 1)
            print_resolver(figures)
            if args.plaintext:
                figures["backfill_plaintext"] = plaintext_backfill(
                    settings, manifest, args.kafka_port, args.backfill_timeout,
                    stream_arguments, sink_arguments)
                print_backfill(figures["backfill_plaintext"])
                print_secure_against_plaintext(figures)
        figures["load_average_end"] = [round(value, 2) for value in os.getloadavg()]
        succeeded = True
    except (BenchError, StepError, PipelineError, StackError, OperationsError) as error:
        print(f"tipsync bench e2e: {error}", file=sys.stderr)
    finally:
        if not args.keep_stack:
            if succeeded:
                stack.reset()  # stops it and frees the disk; the generated data stays
            else:
                stack.down()  # the logs stay in the private state folder for a look
                print(f"tipsync bench e2e: private stack stopped; its logs are in "
                      f"{settings.home / 'logs'}", file=sys.stderr)
    if not succeeded:
        return 1
    if args.keep_stack:
        exports = " ".join(f"{key}='{value}'" for key, value in environment.items())
        say(f"private stack kept running; to reach it: export {exports}")
    print(json.dumps(figures), flush=True)
    return 0


def check_arguments(args: argparse.Namespace) -> None:
    if args.people < 1:
        raise BenchError(f"--people {args.people} is not a number of people; give 1 or more")
    if args.steady_rate <= 0 or args.steady_seconds <= 0:
        raise BenchError(
            f"--steady-rate {args.steady_rate:g} / --steady-seconds {args.steady_seconds:g}: "
            "both must be positive (use --skip-steady to leave the phase out)"
        )
    if args.skip_backfill and args.skip_steady:
        raise BenchError("--skip-backfill with --skip-steady leaves nothing to measure; drop one")
    if not 0 < args.poll_interval <= 5:
        raise BenchError(f"--poll-interval {args.poll_interval:g} must be above 0 and at most 5")


def private_environment(shared: Settings, home: Path, args: argparse.Namespace) -> dict[str, str]:
    """The connection variables of a stack of the benchmark's own (the shared download
    cache), for this process and every ``tipsync`` process it starts."""
    return config.connection_environment(Settings(
        home=home,
        cache=shared.cache,
        kafka_bootstrap=f"127.0.0.1:{args.kafka_port}",
        registry_url=f"https://127.0.0.1:{args.registry_port}/apis/ccompat/v7",
        database_url=config.local_database_url(home, args.postgres_port),
    ))


def machine() -> dict[str, Any]:
    return {"nproc": os.cpu_count(), "cpu_model": cpu_model(),
            "load_average_start": [round(value, 2) for value in os.getloadavg()]}


def wait_until_consuming(settings: Settings, pipeline: Pipeline,
                         timeout: float = READY_TIMEOUT_SECONDS) -> float:
    """Seconds until both pipeline groups are stable with partitions assigned, so the
    start-up of the stream app and the sink is not counted in the backfill."""
    began = time.monotonic()
    reader = OffsetReader(settings)
    while time.monotonic() - began < timeout:
        pipeline.check()
        described = reader.listed(PIPELINE_GROUPS)  # groups forming: see OffsetReader.listed
        if all(state == "STABLE" and assigned
               for state, _members, assigned in described.values()) and len(described) == len(
                   PIPELINE_GROUPS):
            return time.monotonic() - began
        time.sleep(1.0)
    raise BenchError(
        f"the stream app and the sink did not join their consumer groups "
        f"({', '.join(PIPELINE_GROUPS)}) within {timeout:.0f}s; see "
        f"{settings.home / 'logs'} (stream.log, sink.log)"
    )


def warm_up(settings: Settings, stream_arguments: Sequence[str]) -> None:
    """Start the stream app once on the fresh stack, until faust has created its internal
    topics, and stop it.

    On a broker where those topics do not exist yet, faust creates them at start but keeps
    its metadata without them for up to five minutes (aiokafka's metadata_max_age_ms); the
    ingest agent then crashes on every message with PartitionsMismatch ("changelog topic
    has 0 partitions") and the messages it crashed on never reach the store. A second start
    finds the topics; that is the pipeline an operator runs every day after the first.
    """
    began = time.monotonic()
    with Pipeline(settings, stream_arguments) as pipeline:
        wait_until_consuming(settings, pipeline)
        admin = AdminClient(settings.client.librdkafka())
        while time.monotonic() - began < READY_TIMEOUT_SECONDS:
            pipeline.check()
            topics = admin.list_topics(timeout=10).topics
            if any(name.startswith(TOPICS.internal_prefix) and name.endswith(CHANGELOG_SUFFIX)
                   for name in topics):
                break
            time.sleep(1.0)
        else:
            raise BenchError(
                f"the stream app created no changelog topic within {READY_TIMEOUT_SECONDS:.0f}s"
                f" of its first start; see {settings.home / 'logs' / 'stream.log'}"
            )
    say(f"stream app started once to create its internal topics ({time.monotonic() - began:.1f}s)")


# --------------------------------------------------------------------------- (a) backfill


@dataclass
class TimedProduce:
    result: ProduceResult
    began: float  # wall clock (time.time())
    ended: float


def timed_produce(file: ExportFile) -> TimedProduce:
    began = time.time()
    result = produce(file, full_export=False)
    return TimedProduce(result, began, time.time())


def count_person_sources(connection: psycopg.Connection[Any]) -> int:
    row = connection.execute("select count(*) from reconciled.person_source").fetchone()
    return int(row[0]) if row else 0


def last_person_commit(connection: psycopg.Connection[Any]) -> float | None:
    """Wall-clock commit time of the newest person_source row (None without commit
    timestamps)."""
    row = connection.execute(
        "select extract(epoch from max(pg_xact_commit_timestamp(xmin))) "
        "from reconciled.person_source"
    ).fetchone()
    return float(row[0]) if row and row[0] is not None else None


def commit_timestamps_on(connection: psycopg.Connection[Any]) -> bool:
    row = connection.execute("show track_commit_timestamp").fetchone()
    return row is not None and row[0] == "on"


def backfill(settings: Settings, manifest: Manifest, pipeline: Pipeline,
             timeout: float) -> dict[str, Any]:
    files = sorted(manifest.exports(0, "person"), key=lambda file: -file.rows)
    say(f"backfill: {len(files)} person exports, {sum(file.rows for file in files):,} rows, "
        f"{PRODUCER_PROCESSES} producers at a time")
    stream_memory = MemoryPeak(pipeline)
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        exact = commit_timestamps_on(connection)
        began = time.time()
        with ThreadPoolExecutor(PRODUCER_PROCESSES) as pool:
            futures = [pool.submit(timed_produce, file) for file in files]
            visible, finished = watch_backfill(connection, pipeline, futures, began, timeout,
                                               stream_memory)
        produced = [future.result() for future in futures]
        last_commit = last_person_commit(connection) if exact else None
    producers_ended = max(timed.ended for timed in produced)
    # Done when the last record is committed and the last producer has exited: on a small
    # run a producer process can still be shutting down after its last row was committed.
    ended = max(last_commit if last_commit is not None else finished, producers_ended)
    summaries = [timed.result.summary for timed in produced]
    published = sum(int(summary.get("published", 0)) for summary in summaries)
    events = sum(int(summary.get("events", 0)) for summary in summaries)
    seconds = ended - began
    producer_seconds = producers_ended - began
    return {
        "person_rows": sum(int(summary.get("read") or 0) for summary in summaries),
        "person_records_published": published,
        "events_published": events,
        "rejected_by_producers": sum(int(summary.get("rejected", 0)) for summary in summaries),
        "person_records_visible": visible,
        "seconds": round(seconds, 1),
        "person_records_per_second": round(published / seconds, 1) if seconds > 0 else None,
        "events_per_second": round(events / seconds, 1) if seconds > 0 else None,
        "producer_seconds": round(producer_seconds, 1),
        "producer_events_per_second": (round(events / producer_seconds, 1)
                                       if producer_seconds > 0 else None),
        "end_measured_by": "commit timestamp" if last_commit is not None else "poll",
        "stream_peak_rss_mib": stream_memory.peak_mib,
    }


def watch_backfill(connection: psycopg.Connection[Any], pipeline: Pipeline,
                   futures: Sequence[Future[TimedProduce]], began: float, timeout: float,
                   stream_memory: MemoryPeak) -> tuple[int, float]:
    """Poll ``reconciled.person_source`` until it holds every published person record (or
    the pipeline drained without some of them); returns the count and the wall time seen."""
    last_progress = last_change = time.monotonic()
    last_count = progress_count = 0
    while True:
        time.sleep(COUNT_EVERY_SECONDS)
        pipeline.check()
        stream_memory.sample()
        count = count_person_sources(connection)
        now = time.monotonic()
        if count != last_count:
            last_count, last_change = count, now
        if now - last_progress >= PROGRESS_EVERY_SECONDS:
            rate = (count - progress_count) / (now - last_progress)
            done = sum(future.done() for future in futures)
            say(f"  {time.time() - began:7.0f}s: {count:>9,} person records in PostgreSQL "
                f"({rate:,.0f}/s over the last {now - last_progress:.0f}s); "
                f"{done}/{len(futures)} exports published")
            last_progress, progress_count = now, count
        if time.time() - began > timeout:
            raise BenchError(
                f"the backfill did not finish within --backfill-timeout {timeout:.0f}s "
                f"({count:,} person records in PostgreSQL); give a longer timeout or fewer "
                "--people"
            )
        if not all(future.done() for future in futures):
            continue
        for future in futures:
            future.result()  # a producer that failed stops the benchmark with its message
        published = sum(int(future.result().result.summary.get("published", 0))
                        for future in futures)
        if count >= published:
            return count, time.time()
        if now - last_change >= STALL_SECONDS:
            say(f"  person_source stays at {count:,} of {published:,} published records; "
                "waiting for zero lag (the rest went to dead letters or were merged away)")
            wait_for_drain()
            return count_person_sources(connection), time.time()


@dataclass
class MemoryPeak:
    """Peak resident memory of the stream processes (the resolver holds every person)."""

    pipeline: Pipeline
    peak_mib: float = 0.0

    def sample(self) -> None:
        stream = self.pipeline.processes[0].process
        if stream is None:
            return
        total = sum(resident_kib(pid) for pid in process_tree(stream.pid))
        self.peak_mib = max(self.peak_mib, round(total / 1024, 1))


def cpu_roots(pipeline: Pipeline) -> cpu_time.Roots:
    """The processes whose trees are the pipeline's parts, and the benchmark's own."""
    stream, sink = (process.process.pid if process.process is not None else None
                    for process in pipeline.processes)
    return cpu_time.Roots(bench=os.getpid(), stream=stream, sink=sink)


def resolve_worker(roots: cpu_time.Roots) -> int | None:
    """The process that resolves: the ``--role resolve`` worker, or the stream process itself
    when it is the only worker (None when several could)."""
    if roots.stream is None:
        return None
    tree = process_tree(roots.stream)
    for pid in tree:
        try:
            arguments = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
        except OSError:
            continue
        if cpu_time.stream_worker_part(arguments) == f"{cpu_time.STREAM} resolve":
            return pid
    return roots.stream if len(tree) == 1 else None


@dataclass
class MainThread:
    """The scheduler's account of one process's main thread, from a moment on: the resolve
    worker's, whose time runnable but waiting for a CPU is what makes resolve fall behind
    (docs/BENCHMARKS.md, session 11)."""

    pid: int
    began: float
    on_cpu: float
    waiting: float

    @classmethod
    def of(cls, pid: int | None) -> MainThread | None:
        if pid is None:
            return None
        found = cls._read(pid)
        return None if found is None else cls(pid, time.monotonic(), *found)

    @staticmethod
    def _read(pid: int) -> tuple[float, float] | None:
        try:
            return cpu_time.parse_schedstat(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text())
        except (OSError, ValueError):
            return None

    def since(self) -> dict[str, float] | None:
        """Milliseconds per second of wall time on a CPU and waiting for one since ``of``."""
        found = self._read(self.pid)
        seconds = time.monotonic() - self.began
        if found is None or seconds <= 0:
            return None
        return {"on_cpu_ms_per_second": round((found[0] - self.on_cpu) * 1000 / seconds),
                "waiting_ms_per_second": round((found[1] - self.waiting) * 1000 / seconds)}


def add_cpu(phase: dict[str, Any], before: cpu_time.Snapshot | None, roots: cpu_time.Roots,
            marks: cpu_time.StackMarks, changes: int) -> None:
    """The phase's CPU by part (``phase["cpu"]``), when /proc gave both snapshots."""
    cpu = cpu_time.phase_cpu(before, cpu_time.snapshot(), roots, marks, changes)
    if cpu is not None:
        phase["cpu"] = cpu


def process_tree(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def resident_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# --------------------------------------------------------------------------- (b) steady


@dataclass
class Published:
    version: int
    event_time: float  # seconds since 1970


@dataclass
class VisibilityWatch:
    """Watches ``reconciled.person_source`` for the versions the steady publisher sent.

    Only the records with a change in flight are asked for (at most ``POLL_RECORDS``, the
    oldest), by primary key, so a poll costs the same on a store of a thousand records or of
    a million.
    """

    database_url: str
    agency_id: str
    interval: float
    pending: dict[str, list[Published]] = field(default_factory=dict)
    freshness: list[float] = field(default_factory=list)
    superseded: int = 0  # seen only once a newer version of the record was committed
    polls: int = 0
    poll_seconds: float = 0.0
    exact: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def expect(self, record_id: str, version: int, event_time: float) -> None:
        with self.lock:
            self.pending.setdefault(record_id, []).append(Published(version, event_time))

    def waiting(self) -> int:
        with self.lock:
            return sum(len(changes) for changes in self.pending.values())

    def run(self) -> None:
        try:
            with psycopg.connect(self.database_url, autocommit=True) as connection:
                self.exact = commit_timestamps_on(connection)
                visible_at = ("coalesce(pg_xact_commit_timestamp(xmin), clock_timestamp())"
                              if self.exact else "clock_timestamp()")
                query = (
                    f"select source_record_id, source_version, extract(epoch from {visible_at})"
                    " from reconciled.person_source"
                    " where agency_id = %s and source_record_id = any(%s)"
                )
                while not self.stopping.wait(self.interval):
                    self.poll(connection, query)
                self.poll(connection, query)
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            self.error = error

    def poll(self, connection: psycopg.Connection[Any], query: str) -> None:
        with self.lock:
            # The oldest changes first (a dict keeps insertion order): when the pipeline falls
            # behind, asking for every record in flight would make each poll slower and take
            # CPU from the pipeline; the times stay exact, they come from the commit.
            wanted = list(islice(self.pending, POLL_RECORDS))
        if not wanted:
            return
        began = time.perf_counter()
        rows = connection.execute(query, (self.agency_id, wanted)).fetchall()
        self.poll_seconds += time.perf_counter() - began
        self.polls += 1
        with self.lock:
            for record_id, version, visible in rows:
                changes = self.pending.get(record_id, [])
                shown = [change for change in changes if change.version <= version]
                for change in shown:
                    self.freshness.append(float(visible) - change.event_time)
                    self.superseded += change.version < version
                remaining = [change for change in changes if change.version > version]
                if remaining:
                    self.pending[record_id] = remaining
                else:
                    self.pending.pop(record_id, None)


def steady_rows(path: Path) -> Iterator[dict[str, str]]:
    """The agency's export rows, again and again; rows cut short or without an id are left
    out (the export has planted bad rows)."""
    while True:
        yielded = False
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if None in row or None in row.values() or not row.get("source_record_id"):
                    continue
                yielded = True
                yield row
        if not yielded:
            raise BenchError(f"{path} has no usable person row for the steady phase; "
                             "generate the data again (remove the folder)")


def updated_row(row: dict[str, str], moment: datetime, sequence: int) -> dict[str, str]:
    """The record as the agency's system would export it after an edit made at ``moment``:
    a new e-mail address (unique, so it never links the person to anyone else) and the new
    updated_at, which becomes the event's event_time and source_version."""
    return {**row, "email": f"steady.update.{sequence}@example.org",
            "updated_at": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}


def steady(settings: Settings, manifest: Manifest, args: argparse.Namespace) -> dict[str, Any]:
    from producers.canonical import Entity
    from producers.delivery import Publisher
    from producers.encoding import make_serializer
    from producers.events import Governance, change_event, kafka_key
    from producers.records import RowError, to_source_record
    from producers.versions import content_hash

    export = next((file for file in manifest.exports(0, "person")
                   if file.agency == LIVE_AGENCY and file.mapping is None), None)
    if export is None:
        raise BenchError(f"the generated data in {manifest.out_dir} has no {LIVE_AGENCY} "
                         "person export in the canonical columns; generate it again")
    governance = Governance()
    serialize = make_serializer(settings, [Entity.PERSON], LIVE_AGENCY, governance)
    publisher = Publisher(settings.client)
    topic = agency_topic(LIVE_AGENCY, "person")
    publisher.check_topics([topic])
    acknowledged = {"ok": 0, "failed": 0}

    def on_acknowledged(error: str | None) -> None:
        acknowledged["failed" if error else "ok"] += 1

    watch = VisibilityWatch(settings.database_url, LIVE_AGENCY, args.poll_interval)
    watcher = threading.Thread(target=watch.run, name="visibility", daemon=True)
    watcher.start()
    rows = steady_rows(export.path)
    total = int(args.steady_rate * args.steady_seconds)
    sent = refused = 0
    began = time.monotonic()
    while sent < total:
        elapsed = time.monotonic() - began
        due = min(total, int(elapsed * args.steady_rate) + 1)
        while sent < due:
            moment = datetime.now(UTC)
            try:
                record = to_source_record(Entity.PERSON, updated_row(next(rows), moment, sent))
            except RowError:
                refused += 1  # a planted bad row: the producer refuses it, take the next
                if refused > 1000 and sent == 0:
                    raise BenchError(f"{export.path}: the producer refuses every row tried "
                                     "for the steady phase; generate the data again") from None
                continue
            assert record.updated_at is not None  # updated_row always sets it
            version = int(record.updated_at.timestamp() * 1000)
            event = change_event(LIVE_AGENCY, record, version, content_hash(record), moment,
                                 governance)
            value = serialize(Entity.PERSON, event)
            watch.expect(record.source_record_id, version, record.updated_at.timestamp())
            publisher.publish(topic, kafka_key(LIVE_AGENCY, record.source_record_id), value,
                              on_acknowledged)
            sent += 1
        publisher.poll(0)
        time.sleep(max(0.0, min(0.005, (sent / args.steady_rate) - (time.monotonic() - began))))
    publishing_seconds = time.monotonic() - began
    outstanding = publisher.flush(60)
    deadline = time.monotonic() + VISIBILITY_TIMEOUT_SECONDS
    while watch.waiting() and time.monotonic() < deadline and watch.error is None:
        time.sleep(0.2)
    watch.stopping.set()
    watcher.join(30)
    if watch.error is not None:
        raise BenchError(f"polling {settings.database_url.split('?')[0]} for the steady "
                         f"phase's changes failed: {watch.error}")
    achieved = sent / publishing_seconds
    freshness = watch.freshness
    return {
        "agency": LIVE_AGENCY,
        "offered_rate": args.steady_rate,
        "achieved_rate": round(achieved, 1),
        "rate_achieved": achieved >= 0.98 * args.steady_rate,
        "seconds": round(publishing_seconds, 1),
        "published": sent,
        "acknowledged": acknowledged["ok"],
        "not_acknowledged": acknowledged["failed"] + outstanding,
        "bad_rows_skipped": refused,
        "measured": len(freshness),
        "not_visible": watch.waiting(),
        "superseded_before_seen": watch.superseded,
        "visibility": "commit timestamp" if watch.exact else f"poll every {args.poll_interval}s",
        "polls": watch.polls,
        "mean_poll_ms": round(1000 * watch.poll_seconds / watch.polls, 2) if watch.polls else None,
        **{f"p{rank}_seconds": (round(percentile(freshness, rank), 3) if freshness else None)
           for rank in (50, 95, 99)},
        "max_seconds": round(max(freshness), 3) if freshness else None,
    }


# --------------------------------------------------------------------------- output


def print_backfill(figures: dict[str, Any]) -> None:
    say("backfill (agency files -> rows committed in PostgreSQL):")
    for label, value in (
        ("person rows read", f"{figures['person_rows']:,}"),
        ("person records published", f"{figures['person_records_published']:,}"),
        ("events published (person + derived links)", f"{figures['events_published']:,}"),
        ("rows refused by the producers", f"{figures['rejected_by_producers']:,}"),
        ("person records in PostgreSQL", f"{figures['person_records_visible']:,}"),
        ("total time, first publish -> last commit", f"{figures['seconds']:,} s"),
        ("person records/s, end to end", f"{figures['person_records_per_second']:,}"),
        ("events/s, end to end", f"{figures['events_per_second']:,}"),
        ("producers alone (2 at a time)", f"{figures['producer_seconds']:,} s = "
                                          f"{figures['producer_events_per_second']:,} events/s"),
        ("stream processes, peak resident memory", f"{figures['stream_peak_rss_mib']:,} MiB"),
    ):
        say(f"  {label:<44} {value}")


def print_cpu(figures: dict[str, Any], unit: str) -> None:
    if "cpu" in figures:  # not without /proc
        for line in cpu_time.table(figures["cpu"], unit, os.cpu_count()):
            say(f"  {line}")
    thread = figures.get("resolve_main_thread")
    if thread:
        label = "resolve worker's main thread, ms per second"
        say(f"  {label:<44} {thread['on_cpu_ms_per_second']} on a CPU, "
            f"{thread['waiting_ms_per_second']} runnable but waiting for one")


def pipeline_over_resolver(figures: dict[str, Any]) -> float | None:
    pipeline = figures["backfill"]["person_records_per_second"]
    resolver = figures["resolver"]["records_per_second"]
    return round(pipeline / resolver, 3) if pipeline and resolver else None


def print_resolver(figures: dict[str, Any]) -> None:
    resolver = figures["resolver"]
    say("the resolver in-process on the same person records (deploy/bench/e2e_resolver.py):")
    for label, value in (
        ("person records resolved", f"{resolver['person_records']:,} in {resolver['seconds']} s"),
        ("records/s (wall)", f"{resolver['records_per_second']:,}"),
        ("records per CPU second", f"{resolver['records_per_cpu_second']:,}"),
        ("pipeline / resolver (backfill records/s)", f"{figures['pipeline_over_resolver']}"),
    ):
        say(f"  {label:<44} {value}")
    ceiling = figures.get("backfill_ceiling")
    if ceiling:
        say(f"the backfill's ceiling on {ceiling['cores']} cores, were the stream app to cost "
            "only its resolver:")
        for label, value in (
            ("parts outside the stream app, ms/record",
             f"{ceiling['outside_stream_ms_per_record']}"),
            ("resolver in-process, ms/record", f"{ceiling['resolver_ms_per_record']}"),
            ("stream app as measured, ms/record", f"{ceiling['stream_ms_per_record']}"),
            ("at most, records/s", f"{ceiling['records_per_second']:,}"),
            ("at most, pipeline / resolver", f"{ceiling['pipeline_over_resolver']}"),
        ):
            say(f"  {label:<44} {value}")


def print_secure_against_plaintext(figures: dict[str, Any]) -> None:
    secure, plain = figures["backfill"], figures["backfill_plaintext"]
    say("backfill, Kafka SASL_SSL against PLAINTEXT (same records, same run):")
    for label, key in (("total time, s", "seconds"),
                       ("person records/s", "person_records_per_second"),
                       ("producers alone, s", "producer_seconds")):
        ratio = (f"{secure[key] / plain[key]:.2f}" if secure[key] and plain[key] else "-")
        say(f"  {label:<44} {secure[key]} against {plain[key]} (ratio {ratio})")


def steady_hops(settings: Settings, since_ms: int) -> dict[str, Any]:
    """Ingest's and resolve's share of each steady change's time (deploy/bench/e2e_hops.py)."""
    try:
        found = e2e_hops.hop_latencies(settings.client, LIVE_AGENCY, since_ms)
    except (KafkaException, TimeoutError) as error:
        say(f"  (the hops could not be read from Kafka: {error})")
        return {}
    return {hop: e2e_hops.summary(found[hop], percentile) for hop in ("ingest", "resolve")}


def print_steady(figures: dict[str, Any]) -> None:
    say(f"steady ({figures['agency']} person updates, event_time = now):")
    achieved = "achieved" if figures["rate_achieved"] else "NOT achieved"
    for label, value in (
        ("offered rate", f"{figures['offered_rate']:g}/s over {figures['seconds']} s"),
        ("achieved rate", f"{figures['achieved_rate']:g}/s ({achieved})"),
        ("published / acknowledged", f"{figures['published']:,} / {figures['acknowledged']:,}"),
        ("changes measured", f"{figures['measured']:,} ({figures['not_visible']} not visible "
                             f"in {VISIBILITY_TIMEOUT_SECONDS:.0f}s, "
                             f"{figures['superseded_before_seen']} superseded before seen)"),
        ("visible at", f"{figures['visibility']}"),
        ("freshness p50 / p95 / p99 / max",
         " / ".join(f"{figures[key]} s" for key in
                    ("p50_seconds", "p95_seconds", "p99_seconds", "max_seconds"))),
    ):
        say(f"  {label:<44} {value}")
    for hop, label in (("ingest", "in ingest (agency topic -> resolve topic)"),
                       ("resolve", "in resolve (resolve topic -> person mapping)")):
        found = figures.get("hops", {}).get(hop)
        if found and found.get("count"):
            say(f"  {label:<44} " + " / ".join(
                f"{found[key]} s" for key in ("p50_seconds", "p95_seconds", "p99_seconds",
                                              "max_seconds")) + f" ({found['count']:,} changes)")
