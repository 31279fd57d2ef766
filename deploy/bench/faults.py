"""``tipsync bench faults``: SIGKILL the pipeline's processes during a backfill, then count.

On a private stack of its own (own state folder and ports, the shared download cache; wiped
before the run, and after it unless ``--keep-stack``), the synthetic task force of ``tipsync
generate`` (every agency's step-0 exports, every entity) is published with ``tipsync
produce``, two producers at a time, while ``tipsync stream`` and ``tipsync sink`` run. Every
2-6 s (seeded; the seed is printed) one of them is killed with SIGKILL — the stream worker,
the sink, or a running producer — as a whole process group, and started again at once
(a killed producer goes on from its checkpoint). At seeded places among the kills, the Kafka
broker and PostgreSQL are restarted, as many times each (``--restarts``; stopped, started,
waited for): the pipeline's processes ride through them, and one that exits by itself within
``RESTART_GRACE_SECONDS`` of a restart is started again and counted, as its supervisor would
(any other exit fails the run). After ``--kills`` kills, the restarts, and once every
producer has finished, ``tipsync lag --wait-zero`` waits for the pipeline to drain, and the
reconciled store is compared with what the producers published (``deploy.bench.faults_count``):

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

With ``--brokers 3`` the private stack's Kafka is a three-node cluster (``tipsync stack up
--brokers 3``; every client's bootstrap list names the three nodes), and ``--node-kills N``
SIGKILLs a whole Kafka node N times at seeded places (``--node-kill-target``: a node that is
not the active controller, or the active controller): it stays down ``NODE_DOWN_SECONDS`` while
the pipeline goes on, with no process restarted for it, then is started again. At the end every
node must be back in the in-sync replicas of every ``tip.*`` partition it holds
(``isr_restored_seconds``), and after a controller's loss another node must have been elected.

The figures are printed, then one JSON line (the last line of the output); the exit code is
1 when anything was lost or duplicated or a cluster differs (or a node did not catch up).
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
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deploy.bench.faults_count import (
    ENTITIES,
    compare,
    double_counted,
    published_records,
    reference_clusters,
    stored_clusters,
    stored_records,
)
from deploy.demo.generate import ExportFile
from deploy.stack.kafka import cluster_bootstrap
from deploy.stack.layout import BENCH_FAULTS_FOLDER
from schemas import config
from streams.options import SPLIT

DEFAULT_PEOPLE = 1000
DEFAULT_KILLS = 16
DEFAULT_RESTARTS = 2
# Port base 26000, apart from the other benchmarks' stacks and below the ephemeral port range
# (32768-60999), where an outgoing connection may hold a port.
PRIVATE_PORTS = {"kafka": 26092, "registry": 26081, "postgres": 26032}
STACK_FOLDER = "stack"
PRODUCERS_AT_ONCE = 2
KILL_EVERY_SECONDS = (2.0, 6.0)
TARGETS = ("stream", "sink", "producer")
SERVICES = ("kafka", "postgres")  # restarted (stopped, started, waited for), not killed
RESTART_WAITS = 3  # a service's own wait (Kafka's: 120 s), as many times after a restart
# A process that exits by itself this soon after a broker or PostgreSQL restart is started
# again, as its supervisor would, and counted ("exits after a restart"); any other exit
# fails the run.
RESTART_GRACE_SECONDS = 180.0
STREAM_ARGUMENTS = ("--metrics-port", "0")
# --stream-role split: the stream as a resolve worker and an ingest worker (one process group:
# a kill of the stream takes both)
SPLIT_STREAM_ARGUMENTS = (*STREAM_ARGUMENTS, "--role", SPLIT, "--workers", "2")
SINK_ARGUMENTS = ("--metrics-port", "0")
NO_METRICS = {config.STREAM_METRICS_PORT: "0", config.SINK_METRICS_PORT: "0"}
DRAIN_TIMEOUT_SECONDS = 900.0
# A killed Kafka node stays down this long (the pipeline runs on two nodes), then is started
# again; it must be in sync again within NODE_CATCH_UP_SECONDS of the drain.
NODE_DOWN_SECONDS = 20.0
NODE_CATCH_UP_SECONDS = 180.0
NODE_TARGETS = ("broker", "controller")


# --------------------------------------------------------------------------- command


def register_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kills", type=int, default=DEFAULT_KILLS,
                        help=f"SIGKILLs during the backfill (default {DEFAULT_KILLS})")
    parser.add_argument("--restarts", type=int, default=DEFAULT_RESTARTS,
                        help="restarts of the Kafka broker and of PostgreSQL during the "
                             f"backfill, as many of each (default {DEFAULT_RESTARTS}: one each)")
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
                        help=f"the benchmark's folder (default <{config.HOME}>/"
                             f"{BENCH_FAULTS_FOLDER})")
    parser.add_argument("--kafka-port", type=int, default=PRIVATE_PORTS["kafka"])
    parser.add_argument("--registry-port", type=int, default=PRIVATE_PORTS["registry"])
    parser.add_argument("--postgres-port", type=int, default=PRIVATE_PORTS["postgres"])
    parser.add_argument("--drain-timeout", type=float, default=DRAIN_TIMEOUT_SECONDS)
    parser.add_argument("--brokers", type=int, choices=(1, 3), default=1,
                        help="Kafka nodes of the private stack (default 1; 3: a cluster)")
    parser.add_argument("--node-kills", type=int, default=0,
                        help="SIGKILLs of a whole Kafka node during the backfill, each down "
                             f"{NODE_DOWN_SECONDS:.0f}s then started again (needs --brokers 3)")
    parser.add_argument("--node-kill-target", choices=NODE_TARGETS, default="broker",
                        help="the node killed: one that is not the active controller "
                             "(default), or the active controller")
    parser.add_argument("--stream-role", choices=("all", SPLIT), default="all",
                        help="tipsync stream --role: all (one worker, the default) or split "
                             "(a resolve worker and an ingest worker, killed together)")


def run_bench_faults(args: argparse.Namespace) -> int:
    from deploy.bench.e2e import BenchError, private_environment
    from deploy.demo.run import DEMO_SEED
    from deploy.operations.drive import StepError
    from deploy.operations.offsets import OperationsError
    from deploy.operations.supervisor import PipelineError
    from deploy.stack.layout import StackError
    from deploy.stack.stack import LocalStack, prepare_benchmark_folder
    from schemas.config import load_settings

    if args.kills < 0 or args.restarts < 0 or args.people < 1:
        print("tipsync bench faults: --kills and --restarts must be 0 or more and --people 1 "
              "or more", file=sys.stderr)
        return 2
    if args.node_kills and args.brokers < 3:
        print("tipsync bench faults: --node-kills needs a cluster that survives a node's loss:"
              " add --brokers 3", file=sys.stderr)
        return 2
    node_kills = NodeKills(args.brokers, max(args.node_kills, 0), args.node_kill_target)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    shared = load_settings()
    bench_home = (args.home or shared.home / BENCH_FAULTS_FOLDER).resolve()
    environment = {**private_environment(shared, bench_home / STACK_FOLDER, args), **NO_METRICS,
                   config.KAFKA_BOOTSTRAP: cluster_bootstrap(args.kafka_port, args.brokers)}
    if Path(environment[config.HOME]) == shared.home:
        print(f"tipsync bench faults: --home {bench_home} would put the private stack in the "
              "shared state folder; give a folder of its own", file=sys.stderr)
        return 2
    print(f"tipsync bench faults: seed {seed} (rerun with --seed {seed}), {args.kills} kills, "
          f"{args.restarts} broker/PostgreSQL restarts, {args.people} people", flush=True)
    try:
        prepare_benchmark_folder(shared, bench_home)
    except StackError as error:
        print(f"tipsync bench faults: {error}", file=sys.stderr)
        return 2
    saved = dict(os.environ)
    os.environ.update(environment)
    settings = load_settings()
    stack = LocalStack(settings, brokers=args.brokers)
    succeeded = False
    try:
        figures = run_faults(settings, bench_home, seed, args.kills, args.restarts, args.people,
                             args.data_seed if args.data_seed is not None else DEMO_SEED,
                             args.drain_timeout, node_kills,
                             SPLIT_STREAM_ARGUMENTS if args.stream_role == SPLIT
                             else STREAM_ARGUMENTS)
        succeeded = True
    except (BenchError, StepError, PipelineError, StackError, OperationsError) as error:
        print(f"tipsync bench faults: {error}", file=sys.stderr)
        return 1
    finally:
        if succeeded and not figures["passed"]:
            # the logs go with the stack: what they say of the losses is printed first
            print(log_excerpt(settings.home / "logs", figures.get("lost_at", [])), flush=True)
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
    failed_after_restart: int = 0

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

    def finished(self, after_restart: bool = False) -> bool:
        """Whether it exited 0 (its summary noted); a killed run is started again, and so is
        one that failed soon after a broker or PostgreSQL restart (``after_restart``: counted
        in ``failed_after_restart``)."""
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
        if code != 0 and after_restart:
            self.failed_after_restart += 1
            self.start()
            return False
        if code != 0:
            raise BenchError(f"tipsync produce of {self.file.path} exited {code}:\n"
                             + "\n".join(lines[-20:]))
        summary: dict[str, Any] = next((json.loads(line) for line in reversed(lines)
                        if line.startswith("{")), {})
        self.summaries.append(summary)
        self.done = True
        return True


STALL_SECONDS = 90


def drain(pipeline: Any, stream: Any, timeout: float, disruptions: Any) -> int:
    """Wait for zero lag; a stream worker that holds its partitions but consumes nothing for
    ``STALL_SECONDS`` (seen after kills in quick succession, see docs/OPERATIONS.md "What
    survives what") is killed and started again, as a supervisor would: how many times is
    returned and printed, it is a finding of the run."""
    from deploy.bench.e2e import BenchError
    from deploy.operations.drive import PIPELINE_GROUPS, StepError, checked, say

    began, stalls = time.monotonic(), 0
    groups = [argument for group in PIPELINE_GROUPS for argument in ("--group", group)]
    while True:
        asked = time.monotonic()
        try:
            checked("waiting for the pipeline to drain", "lag", "--wait-zero", "--timeout",
                    str(STALL_SECONDS), *groups, timeout=STALL_SECONDS + 60)
            revive(pipeline, disruptions)
            return stalls
        except StepError as error:
            revive(pipeline, disruptions)
            if time.monotonic() - began > timeout:
                raise BenchError(f"the pipeline did not drain within {timeout:.0f}s") from None
            stalls += 1
            # what `tipsync lag` said: a timeout, or the tool itself dying (then it was no
            # stall of the worker: the exit code and its last line tell which)
            said = [line.strip() for line in str(error).splitlines() if line.strip()]
            how = said[0].split("`)", 1)[-1].strip() + (f" {said[-1][:200]}" if len(said) > 1
                                                         else "")
            say(f"  no zero lag after {time.monotonic() - asked:.0f}s: stream worker stalled? "
                f"SIGKILL and start it again (stall {stalls}; `tipsync lag` {how})")
            assert stream.process is not None
            kill_group(stream.process)
            stream.start()


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and everything in its process group (it leads its own
    session), and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def schedule(rng: random.Random, kills: int, restarts: int, node_kills: int = 0) -> list[str]:
    """The order of the disruptions: ``kills`` SIGKILLs ("kill": its victim is drawn at the
    moment) and ``restarts`` restarts, as many of the broker as of PostgreSQL (one more of a
    drawn one when odd), each at a drawn place among the others; then ``node_kills`` kills of
    a Kafka node ("node"), each at a drawn place too."""
    first = rng.randrange(len(SERVICES))
    events = ["kill"] * kills
    for index in range(restarts):
        events.insert(rng.randrange(len(events) + 1), SERVICES[(first + index) % len(SERVICES)])
    for _ in range(node_kills):
        events.insert(rng.randrange(len(events) + 1), "node")
    return events


@dataclass
class NodeKills:
    """The Kafka nodes of the private stack, how many times one is SIGKILLed, which one
    (``NODE_TARGETS``), and what happened each time."""

    brokers: int = 1
    count: int = 0
    target: str = "broker"
    done: list[dict[str, Any]] = field(default_factory=list)
    down: dict[str, Any] | None = None  # the kill whose node is still down
    down_until: float = 0.0
    catching_up: dict[str, Any] | None = None  # the kill whose node is not in sync yet
    last_look: float = 0.0

    def kill(self, kafka: Any, rng: random.Random) -> str:
        """SIGKILL the target node; it is started again by ``tend`` after
        NODE_DOWN_SECONDS."""
        from deploy.bench.e2e import BenchError

        controller = kafka.active_controller()
        others = [node.node_id for node in kafka.nodes if node.node_id != controller]
        victim = controller if self.target == "controller" else rng.choice(others)
        if victim is None or not kafka.kill_node(victim):
            raise BenchError(f"no running Kafka node to kill as the {self.target} "
                             f"(active controller: {controller})")
        self.down = {"node": victim, "target": self.target, "controller_before": controller,
                     "killed_at": time.monotonic(), "new_controller": None,
                     "election_seconds": None, "caught_up_seconds": None}
        self.down_until = time.monotonic() + NODE_DOWN_SECONDS
        return f"SIGKILL Kafka node {victim} (the {self.target}; active controller {controller})"

    def tend(self, kafka: Any) -> str | None:
        """Note the election that follows a controller's loss; start the node again once its
        time is up; note when it is in sync again. What happened, to print, when anything
        did."""
        if self.catching_up is not None and time.monotonic() - self.last_look >= 1.0:
            self.last_look = time.monotonic()
            if self.in_sync(kafka, self.catching_up["node"]):
                self.catching_up["caught_up_seconds"] = round(
                    time.monotonic() - self.catching_up.pop("started_at"), 1)
                caught_up, self.catching_up = self.catching_up, None
                return (f"Kafka node {caught_up['node']} in sync on every replica again "
                        f"{caught_up['caught_up_seconds']}s after its start")
        if self.down is None:
            return None
        killed = self.down
        if killed["new_controller"] is None:
            controller = kafka.active_controller()
            if controller is not None and controller != killed["node"]:
                killed["new_controller"] = controller
                if controller != killed["controller_before"]:
                    killed["election_seconds"] = round(
                        time.monotonic() - killed["killed_at"], 1)
        if time.monotonic() < self.down_until:
            return None
        kafka.start_node(killed["node"])
        killed["down_seconds"] = round(time.monotonic() - killed.pop("killed_at"), 1)
        killed["started_at"] = time.monotonic()
        self.done.append(killed)
        self.down, self.catching_up = None, killed
        return (f"Kafka node {killed['node']} started again after {killed['down_seconds']}s; "
                f"active controller meanwhile {killed['new_controller']}")

    @staticmethod
    def in_sync(kafka: Any, node_id: int) -> bool:
        node = next(node for node in kafka.node_report() if node["id"] == node_id)
        return bool(node["registered"] and node["in_sync_replicas"] == node["replicas"] > 0)

    def wait_in_sync(self, kafka: Any) -> tuple[float | None, int]:
        """Seconds until every node is registered and in sync on every ``tip.*`` replica it
        holds (None when that did not happen within NODE_CATCH_UP_SECONDS), and how many
        replicas were out of sync at the last look."""
        began = time.monotonic()
        while True:
            nodes = kafka.node_report()
            behind = sum(node["replicas"] - node["in_sync_replicas"] for node in nodes)
            if all(node["registered"] for node in nodes) and behind == 0:
                if self.catching_up is not None:  # in sync by now, first seen here
                    self.catching_up["caught_up_seconds"] = round(
                        time.monotonic() - self.catching_up.pop("started_at"), 1)
                    self.catching_up = None
                return round(time.monotonic() - began, 1), 0
            if time.monotonic() - began > NODE_CATCH_UP_SECONDS:
                return None, behind + sum(not node["registered"] for node in nodes)
            time.sleep(1.0)


@dataclass
class Disruptions:
    """What was done to the pipeline, and the processes that exited by themselves after a
    broker or PostgreSQL restart (started again, counted)."""

    killed: Counter[str] = field(default_factory=Counter)
    restarted: Counter[str] = field(default_factory=Counter)
    restart_seconds: list[float] = field(default_factory=list)
    exits_after_restart: Counter[str] = field(default_factory=Counter)
    last_restart: float = float("-inf")

    def in_grace(self) -> bool:
        return time.monotonic() - self.last_restart < RESTART_GRACE_SECONDS


def restart_service(stack: Any, name: str) -> float:
    """Stop a service of the private stack, start it again and wait until it answers (its
    own wait, up to ``RESTART_WAITS`` times: on a loaded machine Kafka took over 2 minutes
    to answer again); the seconds it was away."""
    from deploy.stack.layout import StackError

    began = time.monotonic()
    service = getattr(stack, name)
    service.stop()
    service.start()
    for attempt in range(1, RESTART_WAITS + 1):
        try:
            service.wait()
            break
        except StackError:
            if attempt == RESTART_WAITS:  # (a process that exited fails each wait at once)
                raise
    return time.monotonic() - began


def revive(pipeline: Any, disruptions: Disruptions) -> None:
    """``pipeline.check``, except that a stream or sink process that exited by itself soon
    after a broker or PostgreSQL restart is started again and counted."""
    for process in pipeline.processes:
        if process.process is not None and not process.alive() and disruptions.in_grace():
            from deploy.operations.drive import say

            say(f"  tipsync {process.name} exited {process.process.returncode} after a "
                "restart; started again")
            disruptions.exits_after_restart[process.name] += 1
            process.start()
    pipeline.check()


def run_faults(settings: Any, bench_home: Path, seed: int, kills: int, restarts: int,
               people: int, data_seed: int, drain_timeout: float,
               nodes: NodeKills | None = None,
               stream_arguments: tuple[str, ...] = STREAM_ARGUMENTS) -> dict[str, Any]:
    import psycopg

    from deploy.bench.e2e import wait_until_consuming, warm_up
    from deploy.demo.run import demo_data
    from deploy.operations.drive import prepare, say
    from deploy.operations.supervisor import Pipeline
    from deploy.stack.stack import LocalStack

    rng = random.Random(seed)
    nodes = nodes or NodeKills()
    stack = LocalStack(settings, brokers=nodes.brokers)
    stack.reset()  # the private stack only: producers' checkpoints start empty
    prepare(settings)
    manifest = demo_data(replace(settings, home=bench_home), people, data_seed)
    files = sorted(manifest.exports(0), key=lambda file: (file.agency, file.entity))
    say(f"synthetic task force: {people} people, {len(files)} exports, "
        f"{sum(file.rows for file in files):,} rows")
    warm_up(settings, stream_arguments)
    logs = settings.home / "logs" / "faults"
    runs = [ProducerRun(file, logs / f"produce-{index:03d}.log")
            for index, file in enumerate(files)]
    events = schedule(rng, kills, restarts, nodes.count)
    done = Disruptions()
    began = time.monotonic()
    with Pipeline(settings, stream_arguments, SINK_ARGUMENTS) as pipeline:
        wait_until_consuming(settings, pipeline)
        processes = {process.name: process for process in pipeline.processes}
        waiting, running = list(runs), list[ProducerRun]()
        next_event = time.monotonic() + rng.uniform(*KILL_EVERY_SECONDS)
        while waiting or running or events or nodes.down is not None:
            running = [run for run in running if not run.finished(done.in_grace())]
            if (happened := nodes.tend(stack.kafka)) is not None:
                say(f"  {time.monotonic() - began:6.1f}s: {happened}")
            while waiting and len(running) < PRODUCERS_AT_ONCE:
                run = waiting.pop(0)
                run.start()
                running.append(run)
            if events and time.monotonic() >= next_event:
                event = events.pop(0)
                at = f"  {time.monotonic() - began:6.1f}s:"
                if event == "node":
                    say(f"{at} {nodes.kill(stack.kafka, rng)}")
                elif event in SERVICES:
                    say(f"{at} restarting {event}")
                    seconds = restart_service(stack, event)
                    done.restarted[event] += 1
                    done.restart_seconds.append(round(seconds, 1))
                    done.last_restart = time.monotonic()
                    say(f"{at} {event} restarted ({seconds:.1f}s away)")
                else:
                    target = rng.choice(TARGETS if running else TARGETS[:2])
                    if target == "producer":
                        victim = rng.choice(running)
                        assert victim.process is not None
                        kill_group(victim.process)
                        say(f"{at} SIGKILL producer {victim.file.agency}/{victim.file.entity}; "
                            "started again")
                    else:
                        process = processes[target]
                        assert process.process is not None
                        kill_group(process.process)
                        process.start()
                        say(f"{at} SIGKILL {target}; started again")
                    done.killed[target] += 1
                next_event = time.monotonic() + rng.uniform(*KILL_EVERY_SECONDS)
            revive(pipeline, done)
            time.sleep(0.1)
        produced = time.monotonic() - began
        say(f"producers done, {kills} kills and {restarts} restarts made ({produced:.0f}s); "
            "waiting for the pipeline to drain")
        stalls = drain(pipeline, processes["stream"], drain_timeout, done)
        drained = time.monotonic() - began
    in_sync_seconds, out_of_sync = nodes.wait_in_sync(stack.kafka) if nodes.count else (0.0, 0)
    published = published_records(settings)
    with psycopg.connect(settings.database_url) as connection:
        stored = {entity: stored_records(connection, entity) for entity in ENTITIES}
        duplicated, orphans = double_counted(connection)
        clusters = stored_clusters(connection)
    reference = reference_clusters(published.person_events)
    figures = compare(published, stored, clusters, reference)
    figures.update({
        "benchmark": "faults", "seed": seed, "people": people, "data_seed": data_seed,
        "kills": dict(done.killed), "kills_total": sum(done.killed.values()),
        "restarts": dict(done.restarted), "restarts_total": sum(done.restarted.values()),
        "restart_seconds": done.restart_seconds,
        "exits_after_restart": {
            **done.exits_after_restart,
            "producer": sum(run.failed_after_restart for run in runs),
        },
        "producer_starts": sum(run.starts for run in runs),
        "reported_published": sum(int(summary.get("published", 0))
                                  for run in runs for summary in run.summaries),
        "rejected_by_producers": sum(int(summary.get("rejected", 0))
                                     for run in runs for summary in run.summaries),
        "duplicated_golden_counts": duplicated, "orphan_source_rows": orphans,
        "dead_letters": published.dead_letters, "stalled_stream_restarts": stalls,
        "not_on_resolve_topic": published.not_on_resolve_topic,
        "seconds_producing": round(produced, 1), "seconds_to_drain": round(drained, 1),
        "brokers": nodes.brokers, "node_kills": nodes.done,
        "isr_restored_seconds": in_sync_seconds, "out_of_sync_replicas": out_of_sync,
    })
    figures["duplicated"] = duplicated + orphans
    elected = all(kill["new_controller"] not in (None, kill["node"])
                  for kill in nodes.done if kill["target"] == "controller")
    figures["passed"] = (figures["lost"] == 0 and figures["duplicated"] == 0
                         and figures["cluster_differences"] == 0 and out_of_sync == 0
                         and len(nodes.done) == nodes.count and elected)
    return figures


# what the stream worker logs when it takes up messages faust did not hand over, cannot
# deliver, cannot finish an input (streams.input_gaps, streams.output_producer,
# streams.agent_guard), or a part of it crashes (mode's "Crashed reason=")
GUARD_PHRASES = ("not handed by faust", "never handed by faust", "sought to their first",
                 "could not be delivered", "still not handed", "could not finish",
                 "Crashed reason")
EXCERPT_LINES = 60


def log_excerpt(logs: Path, lost_at: Sequence[str]) -> str:
    """The lines of the pipeline's logs that name a lost record's partition, or tell of the
    stream's guards at work (the first ``EXCERPT_LINES``): the run's evidence, printed before
    its stack (and logs) are wiped. Lines name topics, partitions and offsets, never fields."""
    partitions = {place.split("@", 1)[0] for places in lost_at for place in places.split()}
    lines = [f"the pipeline's log lines about the lost records' partitions "
             f"({', '.join(sorted(partitions)) or 'none'}) and the stream's input guards:"]
    for name in ("stream.log", "sink.log"):
        path = logs / name
        if not path.exists():
            continue
        with path.open(errors="replace") as log:
            for line in log:
                if any(partition in line for partition in partitions) or any(
                        phrase in line for phrase in GUARD_PHRASES):
                    lines.append(f"  {name}: {line.rstrip()[:400]}")
                    if len(lines) > EXCERPT_LINES:
                        return "\n".join([*lines, "  (more in the logs)"])
    return "\n".join(lines)


def report(figures: Mapping[str, Any]) -> str:
    kills, restarts = figures["kills"], figures["restarts"]
    exits = figures["exits_after_restart"]
    lines = [
        f"seed {figures['seed']}: {figures['kills_total']} kills "
        f"({', '.join(f'{name} {kills.get(name, 0)}' for name in TARGETS)}), "
        f"{figures['restarts_total']} restarts "
        f"({', '.join(f'{name} {restarts.get(name, 0)}' for name in SERVICES)}; away "
        f"{figures['restart_seconds']} s), {figures['producer_starts']} producer starts",
        "exits by themselves after a restart, started again: "
        + ", ".join(f"{name} {exits.get(name, 0)}" for name in TARGETS),
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
        *(f"lost record's events at {place}" for place in figures.get("lost_at", [])),
        f"golden people {figures['golden_people']:,} (undisturbed run "
        f"{figures['reference_golden_people']:,}), cluster differences "
        f"{figures['cluster_differences']}",
        f"producing {figures['seconds_producing']}s, drained at {figures['seconds_to_drain']}s: "
        + ("PASSED" if figures["passed"] else "FAILED"),
    ]
    for kill in figures.get("node_kills", []):
        elected = (f"elected in {kill['election_seconds']}s" if kill["election_seconds"]
                   is not None else "unchanged")
        lines.insert(-1, f"Kafka node {kill['node']} ({kill['target']}) SIGKILLed, down "
                         f"{kill['down_seconds']}s, in sync again {kill['caught_up_seconds']}s "
                         f"after its start; active controller {kill['controller_before']} -> "
                         f"{kill['new_controller']} ({elected})")
    if figures.get("node_kills"):
        lines.insert(-1, f"every node in sync again {figures['isr_restored_seconds']}s after the "
                         f"drain; out-of-sync replicas {figures['out_of_sync_replicas']}")
    return "\n".join(lines)
