"""``tipsync bench stream --peers``: the faust worker against a bare confluent-kafka loop and a
quix-streams application, each doing ingest's decode, check and forward on the same agency
topic, in one run, so that the cost of the stream engine is visible.

1. ``--events`` person events (``deploy.bench.stream.person_event``) are published once to
   ``<prefix>.agency.police-ctu.person`` (``--partitions`` partitions), on the stack the
   environment names, with the admin's secure client settings.
2. Three engines read that topic one after another, each as its own consumer group and
   process, each forwarding every accepted event (key: ingest's held key, value: the event's
   bytes) to an output topic of its own, with at-least-once commits:

   - **faust**: tipsync's stream worker with its ingest agent only
     (``deploy.bench.stream_peers_faust``); output: the resolve topic;
   - **bare**: a confluent-kafka consume-process-produce loop, no engine
     (``deploy.bench.stream_peers_bare``); output: ``<prefix>.peers.bare``;
   - **quix**: a quix-streams application (``deploy.bench.stream_peers_quix``), in a virtual
     environment of its own under the cache (``deploy.bench.stream_peers_env``); output:
     ``<prefix>.peers.quix``.

   The two peers run tipsync's own decode and check (``deploy.bench.stream_peers_work``);
   each engine keeps the held entries with a changelog (faust's table, a dict and a topic,
   quix-streams' state).
3. The clock of each runs from its first output message to its last, read from the output
   topic's offsets (start-up and the group's join are not in it); CPU time is the process's
   own (user + system, from /proc) over the same span.
4. Each output is read back: it must hold a message for every input event (count, and the
   set of keys equal to the events' held keys), and each group must have committed the
   input's end.

Figures are printed (events/s, CPU seconds per 1,000 events, each against the bare loop),
then a JSON line of them. The exit status is 1 if an output is incomplete.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from deploy.bench.serde import cpu_model
from deploy.bench.sink_peers import committed, delete_topics, end_offsets
from deploy.bench.stream import _cpu_seconds, person_event
from deploy.bench.stream_harness import ROOT, StreamHarness
from deploy.bench.stream_peers_env import quix_python
from deploy.stack.layout import private_folder
from schemas import config
from schemas.config import Settings
from schemas.topics import TopicSpec, compacted_config, create_topics

AGENCY = "police-ctu"
ENGINES = ("faust", "bare", "quix")
BASELINE = "bare"
WAIT_SECONDS = 900.0  # for one engine to forward every event


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class EngineRun:
    """What one engine did: ``events`` forwarded in all; ``before`` of them already on its
    output when the clock started (its first poll that saw any), ``seconds`` and
    ``cpu_seconds`` from then to the last."""

    engine: str
    events: int
    before: int
    seconds: float
    cpu_seconds: float
    switches: int = 0  # context switches of the process's threads over the same span
    threads: int = 0  # the process's threads at the end

    @property
    def timed(self) -> int:
        return self.events - self.before

    @property
    def events_per_second(self) -> float | None:
        return self.timed / self.seconds if self.timed > 0 and self.seconds > 0 else None

    @property
    def cpu_per_thousand(self) -> float | None:
        """CPU seconds of the engine's process per 1,000 events."""
        return 1000 * self.cpu_seconds / self.timed if self.timed > 0 else None

    @property
    def switches_per_thousand(self) -> float | None:
        """Context switches (voluntary and not) of the engine's threads per 1,000 events:
        each is a thread giving up the CPU or losing it, e.g. to hand the GIL over."""
        return 1000 * self.switches / self.timed if self.timed > 0 else None


def context_switches(pid: int) -> tuple[int, int]:
    """(context switches so far, threads) of a process, summed over its threads (from
    /proc/<pid>/task/*/status; a thread that ended since is not counted)."""
    total = threads = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            text = status.read_text(encoding="ascii")
        except (FileNotFoundError, ProcessLookupError):
            continue
        threads += 1
        total += parse_switches(text)
    return total, threads


def parse_switches(status: str) -> int:
    """Voluntary plus involuntary context switches of one /proc status text."""
    return sum(int(line.split()[1]) for line in status.splitlines()
               if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")))


def ratio(value: float | None, baseline: float | None) -> float | None:
    return value / baseline if value is not None and baseline else None


@dataclass(frozen=True)
class Completeness:
    """An output against the events: messages, distinct keys, keys missing, keys not sent."""

    messages: int
    distinct: int
    missing: int
    unexpected: int

    @property
    def complete(self) -> bool:
        return self.missing == 0 and self.unexpected == 0

    def describe(self) -> str:
        duplicates = self.messages - self.distinct
        state = "complete" if self.complete else "INCOMPLETE"
        return (f"{self.messages:,} messages, {self.distinct:,} keys ({duplicates:,} "
                f"duplicates), {self.missing:,} missing, {self.unexpected:,} unexpected: "
                f"{state}")


def completeness(expected: set[bytes], received: Iterable[bytes | None]) -> Completeness:
    keys = [key or b"" for key in received]
    distinct = set(keys)
    return Completeness(len(keys), len(distinct), len(expected - distinct),
                        len(distinct - expected))


def _figure(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else format(value, pattern)


def table(runs: list[EngineRun], baseline: str = BASELINE) -> list[str]:
    """The printed figures, one line per engine, each against ``baseline``."""
    base = next(run for run in runs if run.engine == baseline)
    lines = [f"{'engine':<7} {'events/s':>9} {'CPU s/1k':>9} {'rate/bare':>9} "
             f"{'CPU/bare':>9} {'timed':>8} {'seconds':>8} {'switches/1k':>11}"]
    for run in runs:
        lines.append(
            f"{run.engine:<7} {_figure(run.events_per_second, ',.0f'):>9} "
            f"{_figure(run.cpu_per_thousand, '.3f'):>9} "
            f"{_figure(ratio(run.events_per_second, base.events_per_second), '.2f'):>9} "
            f"{_figure(ratio(run.cpu_per_thousand, base.cpu_per_thousand), '.2f'):>9} "
            f"{run.timed:>8,} {run.seconds:>8.2f} "
            f"{_figure(run.switches_per_thousand, ',.0f'):>11}")
    return lines


def figures(run: EngineRun, base: EngineRun) -> dict[str, Any]:
    rate, cpu = run.events_per_second, run.cpu_per_thousand
    return {"events": run.events, "timed": run.timed, "seconds": round(run.seconds, 2),
            "events_per_second": None if rate is None else round(rate),
            "cpu_seconds_per_1000": None if cpu is None else round(cpu, 4),
            "context_switches_per_1000": _rounded(run.switches_per_thousand),
            "threads": run.threads,
            "rate_vs_bare": _rounded(ratio(rate, base.events_per_second)),
            "cpu_vs_bare": _rounded(ratio(cpu, base.cpu_per_thousand))}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# --------------------------------------------------------------------------- the run


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


class PeersRun:
    """One run: the topic and its events, the engines' processes, their outputs."""

    def __init__(self, settings: Settings, events: int, partitions: int, seed: int) -> None:
        self.settings = settings
        self.events = events
        self.harness = StreamHarness(settings, agencies=(AGENCY,), entities=("person",),
                                     partitions=partitions)
        self.prefix = self.harness.prefix
        self.input = self.harness.agency_topic(AGENCY, "person")
        self.rng = random.Random(seed)
        self.expected: set[bytes] = set()
        self.state = Path(settings.home) / "bench-stream-peers" / self.prefix

    def output(self, engine: str) -> str:
        return self.harness.topics.resolve if engine == "faust" else f"{self.prefix}.peers.{engine}"

    def group(self, engine: str) -> str:
        if engine == "faust":
            return self.harness.topics.stream_group
        return f"{self.prefix}.peers-{engine}"

    def setup(self) -> None:
        self.harness.setup()
        partitions = self.harness.partitions
        create_topics(self.settings.client, [
            TopicSpec(self.output("bare"), partitions, 1),
            TopicSpec(self.output("quix"), partitions, 1),
            TopicSpec(f"{self.prefix}.peers.bare-changelog", partitions, 1, compacted_config()),
        ])
        private_folder(self.state.parent)
        private_folder(self.state)

    def publish(self) -> float:
        started = time.monotonic()
        for index in range(self.events):
            event = person_event(index, AGENCY, self.rng)
            self.harness.publish("person", event)
            self.expected.add(f"person:{AGENCY}:{event['source_record_id']}".encode())
            if index % 10_000 == 0:
                self.harness.producer.poll(0)
        self.harness.flush()
        return time.monotonic() - started

    def command(self, engine: str, quix: Path) -> list[str]:
        root = ["--topic-root", self.prefix]
        if engine == "faust":
            return [sys.executable, "-m", "deploy.bench.stream_peers_faust", *root]
        if engine == "bare":
            return [sys.executable, "-m", "deploy.bench.stream_peers_bare", *root,
                    "--input", self.input, "--output", self.output("bare"),
                    "--changelog", f"{self.prefix}.peers.bare-changelog",
                    "--group", self.group("bare")]
        return [str(quix), "-m", "deploy.bench.stream_peers_quix", *root,
                "--input", self.input, "--output", self.output("quix"),
                "--group", self.group("quix"), "--state-dir", str(self.state / "quix")]

    def start(self, engine: str, quix: Path) -> tuple[subprocess.Popen[bytes], Path]:
        self.harness.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.harness.logs / f"{self.prefix}-{engine}.log"
        environment = {**os.environ, config.HOME: str(self.settings.home),
                       "PYTHONPATH": str(ROOT.parent)}
        with open(log_path, "ab") as log:
            process = subprocess.Popen(self.command(engine, quix), cwd=ROOT.parent,
                                       stdout=log, stderr=subprocess.STDOUT, env=environment)
        return process, log_path

    def measure(self, engine: str, quix: Path) -> EngineRun:
        process, log = self.start(engine, quix)
        output = self.output(engine)
        try:
            began = time.monotonic()
            first: tuple[float, int, float, int] | None = None
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the {engine} engine exited with {process.returncode} "
                                       f"before forwarding every event; see {log}")
                count = self.harness.count(output)
                now = time.monotonic()
                if count and first is None:
                    first = (now, count, _cpu_seconds(process.pid),
                             context_switches(process.pid)[0])
                if count >= self.events:
                    break
                if now - began > WAIT_SECONDS:
                    raise TimeoutError(f"the {engine} engine forwarded {count:,} of "
                                       f"{self.events:,} events in {WAIT_SECONDS:.0f} s; "
                                       f"see {log}")
                time.sleep(0.1)
            assert first is not None
            switches, threads = context_switches(process.pid)
            run = EngineRun(engine, count, first[1], now - first[0],
                            _cpu_seconds(process.pid) - first[2], switches - first[3], threads)
            self.wait_committed(engine, process, log)
            return run
        finally:
            self.harness.workers.append(process)  # its teardown kills what did not stop
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.harness.stop_worker(process)  # SIGTERM, then up to 60 s

    def wait_committed(self, engine: str, process: subprocess.Popen[bytes], log: Path) -> None:
        """Until the engine's group has committed the input's end (quix-streams commits
        every 5 s, faust every 2.8 s by default): at-least-once, checked."""
        ends = end_offsets(self.settings, self.input)
        admin = AdminClient(self.settings.client.librdkafka())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the {engine} engine exited with {process.returncode} "
                                   f"before committing; see {log}")
            done = committed(admin, self.group(engine), self.input, list(ends))
            if all(done.get(partition, -1) >= end for partition, end in ends.items()):
                return
            time.sleep(0.2)
        raise TimeoutError(f"the {engine} engine's group {self.group(engine)} did not commit "
                           f"the end of {self.input} within 60 s of its last output; see {log}")

    def check(self, engine: str) -> Completeness:
        return completeness(self.expected,
                            (message.key for message in self.harness.read(self.output(engine))))

    def teardown(self) -> None:
        # quix-streams' changelog topics are named after its group, outside the prefix
        admin = AdminClient(self.settings.client.librdkafka())
        group = self.group("quix")
        leftovers = [name for name in admin.list_topics(timeout=15).topics if group in name]
        if leftovers:
            delete_topics(self.settings, leftovers)
        self.harness.teardown()
        shutil.rmtree(self.state, ignore_errors=True)


def run_peers(settings: Settings, events: int, partitions: int, seed: int = 7,
              engines: tuple[str, ...] = ENGINES) -> dict[str, Any]:
    """Run the engines and print their figures; returns them (with ``complete``)."""
    quix = quix_python(settings.cache)
    load_start = load_average()
    run = PeersRun(settings, events, partitions, seed)
    print(f"tipsync bench stream --peers: {events:,} person events, {partitions} partitions, "
          f"engines {', '.join(engines)} (topic root {run.prefix})")
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}; load average {load_start}",
          flush=True)
    runs: list[EngineRun] = []
    outputs: dict[str, Completeness] = {}
    try:
        run.setup()
        seconds = run.publish()
        print(f"published {events:,} events to {run.input} in {seconds:.1f} s", flush=True)
        for engine in engines:
            measured = run.measure(engine, quix)
            runs.append(measured)
            outputs[engine] = run.check(engine)
            print(f"{engine:<6}: {_figure(measured.events_per_second, ',.0f')} events/s, "
                  f"{_figure(measured.cpu_per_thousand, '.3f')} CPU s and "
                  f"{_figure(measured.switches_per_thousand, ',.0f')} context switches "
                  f"({measured.threads} threads) per 1,000 events; output "
                  f"{outputs[engine].describe()}; load average {load_average()}", flush=True)
    finally:
        run.teardown()
    base = next((item for item in runs if item.engine == BASELINE), runs[0])
    for line in table(runs, base.engine):
        print(line)
    complete = all(item.complete for item in outputs.values())
    result = {
        "benchmark": "stream-peers", "events": events, "partitions": partitions,
        "engines": {item.engine: {**figures(item, base), "complete": outputs[item.engine].complete,
                                  "messages": outputs[item.engine].messages}
                    for item in runs},
        "complete": complete, "load_average_start": load_start,
        "load_average_end": load_average(), "cpus": os.cpu_count(),
    }
    print(json.dumps(result), flush=True)
    return result
