"""``tipsync bench faults``: SIGKILL the pipeline's processes during a backfill, then count.

On a private stack of its own (own state folder and ports, the shared download cache; wiped
before the run, and after it unless ``--keep-stack``), the synthetic task force of ``tipsync
generate`` (every agency's step-0 exports, every entity) is published with ``tipsync
produce``, two producers at a time, while ``tipsync stream`` and ``tipsync sink`` run. Every
2-6 s (seeded; the seed is printed) one of them is killed with SIGKILL — the stream worker,
the sink, or a running producer — as a whole process group, and started again at once
(a killed producer goes on from its checkpoint). After ``--kills`` kills and once every
producer has finished, ``tipsync lag --wait-zero`` waits for the pipeline to drain, and the
reconciled store is compared with what the producers published:

- **published**: every source record on the agency topics, its latest version by ingest's
  own rules (``streams.ingest.judge``), read back from Kafka (a producer restarted after a
  kill publishes part of its export again; the sum of its reports is printed too);
- **lost**: a published live record that is missing from its ``reconciled.<entity>_source``
  table, marked deleted, or held at an older version; a deleted one that is still live;
- **duplicated**: a source record counted by more than one golden record (the golden rows'
  ``source_count`` summed against the live source rows), or pointing at a golden record
  that does not exist;
- **cluster differences**: the partition of the live person records into golden people,
  against an undisturbed run of the same events: the resolve stage in-process
  (``ResolveStage.load``, the rebuild path of the stream app), fed every published person
  event through ingest's rules. Golden ids are not compared, only who is with whom.

The figures are printed, then one JSON line (the last line of the output); the exit code is
1 when anything was lost or duplicated or a cluster differs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deploy.demo.generate import ExportFile
from schemas import config
from schemas.client_config import ClientConfig

DEFAULT_PEOPLE = 1000
DEFAULT_KILLS = 16
# Port base 26000, apart from the other benchmarks' stacks and below the ephemeral port range
# (32768-60999), where an outgoing connection may hold a port.
PRIVATE_PORTS = {"kafka": 26092, "registry": 26081, "postgres": 26032}
STACK_FOLDER = "stack"
PRODUCERS_AT_ONCE = 2
KILL_EVERY_SECONDS = (2.0, 6.0)
TARGETS = ("stream", "sink", "producer")
STREAM_ARGUMENTS = ("--metrics-port", "0")
SINK_ARGUMENTS = ("--metrics-port", "0")
NO_METRICS = {config.STREAM_METRICS_PORT: "0", config.SINK_METRICS_PORT: "0"}
ENTITIES = ("person", "case", "report", "organisation", "location", "link")
DRAIN_TIMEOUT_SECONDS = 900.0


# --------------------------------------------------------------------------- command


def register_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kills", type=int, default=DEFAULT_KILLS,
                        help=f"SIGKILLs during the backfill (default {DEFAULT_KILLS})")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the kill schedule (default: a random one, printed)")
    parser.add_argument("--people", type=int, default=DEFAULT_PEOPLE,
                        help=f"true people of the synthetic task force (about 1.9 person "
                             f"records each; default {DEFAULT_PEOPLE})")
    parser.add_argument("--data-seed", type=int, default=None,
                        help="generator seed (default: the demo's)")
    parser.add_argument("--keep-stack", action="store_true",
                        help="leave the private stack running, with its data, at the end")
    parser.add_argument("--home", type=Path, default=None,
                        help=f"the benchmark's folder (default <{config.HOME}>/bench-faults)")
    parser.add_argument("--kafka-port", type=int, default=PRIVATE_PORTS["kafka"])
    parser.add_argument("--registry-port", type=int, default=PRIVATE_PORTS["registry"])
    parser.add_argument("--postgres-port", type=int, default=PRIVATE_PORTS["postgres"])
    parser.add_argument("--drain-timeout", type=float, default=DRAIN_TIMEOUT_SECONDS)


def run_bench_faults(args: argparse.Namespace) -> int:
    from deploy.bench.e2e import BenchError, private_environment
    from deploy.demo.run import DEMO_SEED
    from deploy.operations.drive import StepError
    from deploy.operations.offsets import OperationsError
    from deploy.operations.supervisor import PipelineError
    from deploy.stack.layout import StackError
    from deploy.stack.stack import LocalStack
    from schemas.config import load_settings

    if args.kills < 0 or args.people < 1:
        print("tipsync bench faults: --kills must be 0 or more and --people 1 or more",
              file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    shared = load_settings()
    bench_home = (args.home or shared.home / "bench-faults").resolve()
    environment = {**private_environment(shared, bench_home / STACK_FOLDER, args), **NO_METRICS}
    if Path(environment[config.HOME]) == shared.home:
        print(f"tipsync bench faults: --home {bench_home} would put the private stack in the "
              "shared state folder; give a folder of its own", file=sys.stderr)
        return 2
    print(f"tipsync bench faults: seed {seed} (rerun with --seed {seed}), {args.kills} kills, "
          f"{args.people} people", flush=True)
    saved = dict(os.environ)
    os.environ.update(environment)
    settings = load_settings()
    stack = LocalStack(settings)
    succeeded = False
    try:
        figures = run_faults(settings, bench_home, seed, args.kills, args.people,
                             args.data_seed if args.data_seed is not None else DEMO_SEED,
                             args.drain_timeout)
        succeeded = True
    except (BenchError, StepError, PipelineError, StackError, OperationsError) as error:
        print(f"tipsync bench faults: {error}", file=sys.stderr)
        return 1
    finally:
        if args.keep_stack:
            exports = " ".join(f"{key}='{value}'" for key, value in environment.items())
            print(f"private stack kept running; to reach it: export {exports}")
        elif succeeded:
            stack.reset()
        else:
            stack.down()
            print(f"private stack stopped; its logs are in {settings.home / 'logs'}",
                  file=sys.stderr)
        os.environ.clear()
        os.environ.update(saved)
    print(report(figures), flush=True)
    print(json.dumps(figures), flush=True)
    return 0 if figures["passed"] else 1


# --------------------------------------------------------------------------- the run


@dataclass
class ProducerRun:
    """One export file's ``tipsync produce``, started again after every kill until it
    exits 0."""

    file: ExportFile
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    summaries: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False

    def start(self) -> None:
        arguments = [sys.executable, "-m", "deploy.cli", "produce", "--agency",
                     self.file.agency, "--entity", self.file.entity, "--file",
                     str(self.file.path), "--no-progress"]
        if self.file.mapping is not None:
            arguments += ["--mapping", str(self.file.mapping)]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as output:
            self.process = subprocess.Popen(
                arguments, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                env=dict(os.environ), start_new_session=True,
            )
        self.starts += 1

    def finished(self) -> bool:
        """Whether it exited 0 (its summary noted); a killed run is started again."""
        from deploy.bench.e2e import BenchError

        if self.done:
            return True
        assert self.process is not None
        code = self.process.poll()
        if code is None:
            return False
        if code == -signal.SIGKILL:
            self.start()
            return False
        lines = self.log.read_text(errors="replace").splitlines()
        if code != 0:
            raise BenchError(f"tipsync produce of {self.file.path} exited {code}:\n"
                             + "\n".join(lines[-20:]))
        summary: dict[str, Any] = next((json.loads(line) for line in reversed(lines)
                        if line.startswith("{")), {})
        self.summaries.append(summary)
        self.done = True
        return True


STALL_SECONDS = 90


def drain(pipeline: Any, stream: Any, timeout: float) -> int:
    """Wait for zero lag; a stream worker that holds its partitions but consumes nothing for
    ``STALL_SECONDS`` (seen after kills in quick succession, see docs/OPERATIONS.md "What
    survives what") is killed and started again, as a supervisor would: how many times is
    returned and printed, it is a finding of the run."""
    from deploy.bench.e2e import BenchError
    from deploy.operations.drive import PIPELINE_GROUPS, StepError, checked, say

    began, stalls = time.monotonic(), 0
    groups = [argument for group in PIPELINE_GROUPS for argument in ("--group", group)]
    while True:
        try:
            checked("waiting for the pipeline to drain", "lag", "--wait-zero", "--timeout",
                    str(STALL_SECONDS), *groups, timeout=STALL_SECONDS + 60)
            pipeline.check()
            return stalls
        except StepError:
            pipeline.check()
            if time.monotonic() - began > timeout:
                raise BenchError(f"the pipeline did not drain within {timeout:.0f}s") from None
            stalls += 1
            say(f"  no zero lag after {STALL_SECONDS}s: stream worker stalled? SIGKILL and "
                f"start it again (stall {stalls})")
            assert stream.process is not None
            kill_group(stream.process)
            stream.start()


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and everything in its process group (it leads its own
    session), and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_faults(settings: Any, bench_home: Path, seed: int, kills: int, people: int,
               data_seed: int, drain_timeout: float) -> dict[str, Any]:
    import psycopg

    from deploy.bench.e2e import wait_until_consuming, warm_up
    from deploy.demo.run import demo_data
    from deploy.operations.drive import prepare, say
    from deploy.operations.supervisor import Pipeline
    from deploy.stack.stack import LocalStack

    rng = random.Random(seed)
    LocalStack(settings).reset()  # the private stack only: producers' checkpoints start empty
    prepare(settings)
    manifest = demo_data(replace(settings, home=bench_home), people, data_seed)
    files = sorted(manifest.exports(0), key=lambda file: (file.agency, file.entity))
    say(f"synthetic task force: {people} people, {len(files)} exports, "
        f"{sum(file.rows for file in files):,} rows")
    warm_up(settings, STREAM_ARGUMENTS)
    logs = settings.home / "logs" / "faults"
    runs = [ProducerRun(file, logs / f"produce-{index:03d}.log")
            for index, file in enumerate(files)]
    killed: Counter[str] = Counter()
    began = time.monotonic()
    with Pipeline(settings, STREAM_ARGUMENTS, SINK_ARGUMENTS) as pipeline:
        wait_until_consuming(settings, pipeline)
        processes = {process.name: process for process in pipeline.processes}
        waiting, running = list(runs), list[ProducerRun]()
        next_kill = time.monotonic() + rng.uniform(*KILL_EVERY_SECONDS)
        while waiting or running or sum(killed.values()) < kills:
            running = [run for run in running if not run.finished()]
            while waiting and len(running) < PRODUCERS_AT_ONCE:
                run = waiting.pop(0)
                run.start()
                running.append(run)
            if sum(killed.values()) < kills and time.monotonic() >= next_kill:
                target = rng.choice(TARGETS if running else TARGETS[:2])
                if target == "producer":
                    victim = rng.choice(running)
                    assert victim.process is not None
                    kill_group(victim.process)
                    say(f"  {time.monotonic() - began:6.1f}s: SIGKILL producer "
                        f"{victim.file.agency}/{victim.file.entity}; started again")
                else:
                    process = processes[target]
                    assert process.process is not None
                    kill_group(process.process)
                    process.start()
                    say(f"  {time.monotonic() - began:6.1f}s: SIGKILL {target}; started again")
                killed[target] += 1
                next_kill = time.monotonic() + rng.uniform(*KILL_EVERY_SECONDS)
            pipeline.check()
            time.sleep(0.1)
        produced = time.monotonic() - began
        say(f"producers done and {kills} kills made ({produced:.0f}s); waiting for the "
            "pipeline to drain")
        stalls = drain(pipeline, processes["stream"], drain_timeout)
        drained = time.monotonic() - began
    published = published_records(settings)
    with psycopg.connect(settings.database_url) as connection:
        stored = {entity: stored_records(connection, entity) for entity in ENTITIES}
        duplicated, orphans = double_counted(connection)
        clusters = stored_clusters(connection)
    reference = reference_clusters(published.person_events)
    figures = compare(published, stored, clusters, reference)
    figures.update({
        "benchmark": "faults", "seed": seed, "people": people, "data_seed": data_seed,
        "kills": dict(killed), "kills_total": sum(killed.values()),
        "restarts": sum(killed.values()),
        "producer_starts": sum(run.starts for run in runs),
        "reported_published": sum(int(summary.get("published", 0))
                                  for run in runs for summary in run.summaries),
        "rejected_by_producers": sum(int(summary.get("rejected", 0))
                                     for run in runs for summary in run.summaries),
        "duplicated_golden_counts": duplicated, "orphan_source_rows": orphans,
        "dead_letters": published.dead_letters, "stalled_stream_restarts": stalls,
        "not_on_resolve_topic": published.not_on_resolve_topic,
        "seconds_producing": round(produced, 1), "seconds_to_drain": round(drained, 1),
    })
    figures["duplicated"] = duplicated + orphans
    figures["passed"] = (figures["lost"] == 0 and figures["duplicated"] == 0
                         and figures["cluster_differences"] == 0)
    return figures


# --------------------------------------------------------------------------- what was published


@dataclass
class Published:
    """Per entity, (agency_id, source_record_id) -> (latest accepted version, live)."""

    latest: dict[str, dict[tuple[str, str], tuple[int, bool]]]
    person_events: list[Any]  # the accepted person events, in topic order
    events: int
    dead_letters: int
    not_on_resolve_topic: int  # live person and link records ingest never forwarded


def read_topics(client: ClientConfig, topics: Iterable[str]) -> Iterable[Any]:
    """Every message of ``topics``, from the start to the end offsets of now."""
    import confluent_kafka
    from confluent_kafka.admin import AdminClient, OffsetSpec

    admin = AdminClient(client.librdkafka())
    metadata = admin.list_topics(timeout=30)
    partitions = [confluent_kafka.TopicPartition(topic, partition)
                  for topic in sorted(topics)
                  for partition in sorted(metadata.topics[topic].partitions)]
    if not partitions:
        return

    def offsets(spec: Any) -> dict[tuple[str, int], int]:
        futures = admin.list_offsets({tp: spec for tp in partitions}, request_timeout=30)
        return {(tp.topic, tp.partition): future.result().offset
                for tp, future in futures.items()}

    low, high = offsets(OffsetSpec.earliest()), offsets(OffsetSpec.latest())
    pending = {key for key in high if high[key] > low[key]}
    if not pending:
        return
    consumer = confluent_kafka.Consumer(client.librdkafka({
        "group.id": "tipsync-bench-faults-reader",
        "enable.auto.commit": False, "enable.partition.eof": False,
    }))
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, partition, low[(topic, partition)])
                         for topic, partition in sorted(pending)])
        while pending:
            message = consumer.poll(30)
            if message is None:
                raise RuntimeError(f"nothing more to read, still pending: {sorted(pending)[:5]}")
            if message.error():
                continue
            key = (message.topic() or "", message.partition() or 0)
            if key not in pending:
                continue
            if (message.offset() or 0) >= high[key] - 1:
                pending.discard(key)
            yield message
    finally:
        consumer.close()


def published_records(settings: Any) -> Published:
    from confluent_kafka.admin import AdminClient

    from schemas.registry import SchemaRegistry
    from schemas.serde import AvroDeserializer
    from schemas.topics import TOPICS
    from streams.ingest import Held, Verdict, check_event, judge, remember

    admin = AdminClient(settings.client.librdkafka())
    names = admin.list_topics(timeout=30).topics
    agency_topics = [name for name in names if TOPICS.parse_agency(name) is not None]
    deserialize = AvroDeserializer(SchemaRegistry(settings.client.registry()))
    held: dict[str, Held] = {}
    latest: dict[str, dict[tuple[str, str], tuple[int, bool]]] = defaultdict(dict)
    person_events = []
    events = 0
    for message in read_topics(settings.client, agency_topics):
        parsed = TOPICS.parse_agency(message.topic())
        assert parsed is not None
        agency_id, entity = parsed
        events += 1
        event = check_event(agency_id, entity, message.key(),
                            deserialize(message.value()).record)
        key = event.held_key
        verdict = judge(held.get(key), event.event_id, event.source_version)
        held[key] = remember(held.get(key), event.event_id, event.source_version)
        if verdict is not Verdict.ACCEPT:
            continue
        latest[entity][(agency_id, event.source_record_id)] = (
            event.source_version, event.op != "DELETE")
        if entity == "person":
            person_events.append(event)
    # which person and link records reached the resolve topic (ingest's forward)
    forwarded = {message.key().decode() for message in read_topics(
        settings.client, [TOPICS.resolve]) if message.key() is not None}
    not_forwarded = sum(
        1 for entity in ("person", "link") for (agency_id, record_id), (_, alive)
        in latest.get(entity, {}).items()
        if alive and f"{entity}:{agency_id}:{record_id}" not in forwarded
    )
    dead_letters = 0
    for stage in ("ingest", "resolve", "sink"):
        topic = TOPICS.dlq(stage)
        if topic in names:
            dead_letters += sum(1 for _ in read_topics(settings.client, [topic]))
    return Published(dict(latest), person_events, events, dead_letters, not_forwarded)


# --------------------------------------------------------------------------- what was stored


def stored_records(connection: Any, entity: str) -> dict[tuple[str, str], tuple[int, bool]]:
    rows = connection.execute(
        f"select agency_id, source_record_id, source_version, not deleted "
        f"from reconciled.{entity}_source"
    ).fetchall()
    return {(agency, record): (int(version), bool(live))
            for agency, record, version, live in rows}


def double_counted(connection: Any) -> tuple[int, int]:
    """(source records counted by golden people beyond the live person_source rows, live
    source rows of any entity whose golden record does not exist)."""
    counted = connection.execute(
        "select coalesce(sum(source_count), 0) from reconciled.person").fetchone()[0]
    live = connection.execute(
        "select count(*) from reconciled.person_source where not deleted").fetchone()[0]
    orphans = 0
    for entity in ENTITIES:
        table = '"case"' if entity == "case" else entity
        orphans += connection.execute(
            f"select count(*) from reconciled.{entity}_source s where not s.deleted and not "
            f"exists (select 1 from reconciled.{table} g where g.{entity}_id = s.{entity}_id)"
        ).fetchone()[0]
    return max(0, int(counted) - int(live)), int(orphans)


def stored_clusters(connection: Any) -> set[frozenset[str]]:
    members: dict[str, set[str]] = defaultdict(set)
    for agency, record, person in connection.execute(
        "select agency_id, source_record_id, person_id::text from reconciled.person_source "
        "where not deleted"
    ).fetchall():
        members[person].add(f"{agency}:{record}")
    return {frozenset(keys) for keys in members.values()}


def reference_clusters(person_events: Iterable[Any]) -> set[frozenset[str]]:
    """The clusters of an undisturbed run: the stream app's resolve stage, in-process, fed
    the accepted person events (the rebuild path, ``ResolveStage.load``)."""
    from schemas.agencies import load_agencies
    from streams.resolve import Resolver
    from streams.resolve_stage import ResolveStage, trust_ranks

    stage = ResolveStage(lambda: Resolver(trust_ranks(load_agencies())))
    for event in person_events:
        stage.load(event)
    return {frozenset(keys) for keys in stage.resolver.clusters().values()}


# --------------------------------------------------------------------------- figures


def compare(published: Published, stored: Mapping[str, Mapping[tuple[str, str], tuple[int, bool]]],
            clusters: set[frozenset[str]], reference: set[frozenset[str]]) -> dict[str, Any]:
    per_entity: dict[str, dict[str, int]] = {}
    for entity in ENTITIES:
        expected = published.latest.get(entity, {})
        store = stored.get(entity, {})
        live = {key for key, (_, alive) in expected.items() if alive}
        lost = sum(1 for key in live if store.get(key, (0, False))[1] is False
                   or store[key][0] < expected[key][0])
        undeleted = sum(1 for key, (_, alive) in expected.items()
                        if not alive and store.get(key, (0, False))[1])
        unknown = sum(1 for key, (_, alive) in store.items() if alive and key not in expected)
        per_entity[entity] = {
            "published": len(live), "published_deleted": len(expected) - len(live),
            "stored": sum(1 for _, alive in store.values() if alive),
            "lost": lost + undeleted, "not_published": unknown,
        }
    differences = len(clusters ^ reference)
    return {
        "events_on_agency_topics": published.events,
        "published": sum(figure["published"] for figure in per_entity.values()),
        "stored": sum(figure["stored"] for figure in per_entity.values()),
        "lost": sum(figure["lost"] for figure in per_entity.values()),
        "not_published_but_stored": sum(f["not_published"] for f in per_entity.values()),
        "by_entity": per_entity,
        "golden_people": len(clusters), "reference_golden_people": len(reference),
        "cluster_differences": differences,
    }


def report(figures: Mapping[str, Any]) -> str:
    kills = figures["kills"]
    lines = [
        f"seed {figures['seed']}: {figures['kills_total']} kills "
        f"({', '.join(f'{name} {kills.get(name, 0)}' for name in TARGETS)}), "
        f"{figures['restarts']} restarts ({figures['producer_starts']} producer starts)",
        f"events on the agency topics {figures['events_on_agency_topics']:,}; producers reported "
        f"{figures['reported_published']:,} published, {figures['rejected_by_producers']:,} "
        f"rejected",
        f"{'entity':<14}{'published':>10}{'deleted':>9}{'stored':>9}{'lost':>6}{'extra':>7}",
    ]
    for entity, row in figures["by_entity"].items():
        lines.append(f"{entity:<14}{row['published']:>10,}{row['published_deleted']:>9,}"
                     f"{row['stored']:>9,}{row['lost']:>6}{row['not_published']:>7}")
    lines += [
        f"published {figures['published']:,}, stored {figures['stored']:,}, lost "
        f"{figures['lost']}, duplicated {figures['duplicated']} (golden counts "
        f"{figures['duplicated_golden_counts']}, orphan rows {figures['orphan_source_rows']}), "
        f"dead letters {figures['dead_letters']}, person/link records never on the resolve "
        f"topic {figures['not_on_resolve_topic']}, stalled stream restarts "
        f"{figures['stalled_stream_restarts']}",
        f"golden people {figures['golden_people']:,} (undisturbed run "
        f"{figures['reference_golden_people']:,}), cluster differences "
        f"{figures['cluster_differences']}",
        f"producing {figures['seconds_producing']}s, drained at {figures['seconds_to_drain']}s: "
        + ("PASSED" if figures["passed"] else "FAILED"),
    ]
    return "\n".join(lines)
