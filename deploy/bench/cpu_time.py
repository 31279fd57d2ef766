"""Where the CPU goes during a phase of ``tipsync bench e2e``: CPU seconds per part of the
pipeline, read from /proc.

Two snapshots, one at each end of the phase, each of every process's CPU time
(``/proc/<pid>/stat``: utime + stime of its own threads, cutime + cstime of the children it
waited for) and of the machine's busy time (``/proc/stat``). A process belongs to the part
of its nearest ancestor (itself included) that is recognised:

- ``stream``, ``sink``: the trees of the processes ``Pipeline`` started; a stream worker with
  ``--role resolve`` / ``--role ingest`` on its command line is ``stream resolve`` /
  ``stream ingest`` (with ``--role split``; ``stream`` is then the parent that starts them);
- ``kafka``, ``registry``, ``postgresql``: the private stack's processes, recognised by the
  paths of the stack's own state folder on their command lines (exact arguments, so the
  machine's shared stack and other benchmarks' stacks are ``other``); PostgreSQL's backends
  are the postmaster's children;
- ``bench``: the benchmark's own process (publisher and poller threads), and ``producers``
  the child processes it started and waited for (``tipsync produce``; the kernel adds a
  waited-for child's time to its parent's cutime/cstime, which is ``os.times()``'s children
  times);
- ``other``: the machine's busy time less the parts: other users' work, kernel threads.

A process started during the phase counts from 0. One that ended during it was waited for by
its parent, which now holds its whole life's time: what it had used before the phase is taken
off there. A process that ended and was not waited for by a process still seen loses its time.

The snapshot is the only I/O; the rest are pure functions over plain data.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STREAM, SINK, KAFKA, REGISTRY, POSTGRESQL = "stream", "sink", "kafka", "registry", "postgresql"
PRODUCERS, BENCH, OTHER = "producers", "bench", "other"
STREAM_ROLES = ("resolve", "ingest")  # a worker's --role that gets a line of its own
PART_ORDER = (STREAM, *(f"{STREAM} {role}" for role in STREAM_ROLES), SINK, KAFKA, REGISTRY,
              POSTGRESQL, PRODUCERS, BENCH, OTHER)
PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessTimes:
    """One process's CPU time, in seconds, at a snapshot."""

    parent: int
    started: int  # clock ticks after boot: tells a reused pid from the process it was
    own: float  # utime + stime: its threads, live and ended
    reaped: float  # cutime + cstime: the children (and theirs) it waited for
    arguments: tuple[str, ...]


@dataclass(frozen=True)
class Snapshot:
    taken: float  # time.monotonic()
    busy: float  # seconds the machine's CPUs were busy since boot, all CPUs together
    processes: Mapping[int, ProcessTimes]


@dataclass(frozen=True)
class StackMarks:
    """Arguments only the private stack's processes carry (deploy/stack starts them so)."""

    kafka_logs: str  # -Dkafka.logs.dir=<home>/logs, beside the main class kafka.Kafka
    registry_tmpdir: str  # -Djava.io.tmpdir=<home>/registry
    postgres_data: str  # the postmaster's -D <home>/postgres/data

    @classmethod
    def of(cls, home: Path) -> StackMarks:
        """The marks of the stack whose state folder is ``home`` (deploy/stack/layout.py)."""
        return cls(kafka_logs=f"-Dkafka.logs.dir={home / 'logs'}",
                   registry_tmpdir=f"-Djava.io.tmpdir={home / 'registry'}",
                   postgres_data=str(home / "postgres" / "data"))


@dataclass(frozen=True)
class Roots:
    """The processes the benchmark knows by pid."""

    bench: int
    stream: int | None = None
    sink: int | None = None


# --------------------------------------------------------------------------- pure parts


def parse_process_stat(text: str, ticks_per_second: float) -> tuple[int, int, float, float]:
    """(parent pid, start time in ticks, own seconds, reaped children's seconds) from the
    text of ``/proc/<pid>/stat``. The command name in parentheses may hold spaces and
    parentheses itself, so the fields are counted from its last ``)``."""
    fields = text.rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return (int(fields[1]), int(fields[19]), (utime + stime) / ticks_per_second,
            (cutime + cstime) / ticks_per_second)


def parse_busy_seconds(text: str, ticks_per_second: float) -> float:
    """Busy seconds of all CPUs together from ``/proc/stat``'s ``cpu`` line: user, nice,
    system, irq and softirq (idle and iowait are not busy; steal is another machine's)."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
            return (user + nice + system + irq + softirq) / ticks_per_second
    raise ValueError("no 'cpu' line in /proc/stat")


def parse_schedstat(text: str) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) from the nanoseconds of
    ``/proc/<pid>/task/<tid>/schedstat``: the second is CPU starvation, which the thread's
    own CPU time cannot show."""
    on_cpu, waiting = (int(value) for value in text.split()[:2])
    return on_cpu / 1e9, waiting / 1e9


def stack_part(arguments: Sequence[str], marks: StackMarks) -> str | None:
    """``kafka``, ``registry`` or ``postgresql`` for a process of the private stack, from its
    command line's arguments; None for any other (the shared stack's included)."""
    if "kafka.Kafka" in arguments and marks.kafka_logs in arguments:
        return KAFKA
    if marks.registry_tmpdir in arguments:
        return REGISTRY
    if any(argument == "-D" and following == marks.postgres_data
           for argument, following in zip(arguments, arguments[1:], strict=False)):
        return POSTGRESQL
    return None


def stream_worker_part(arguments: Sequence[str]) -> str | None:
    """``stream resolve`` / ``stream ingest`` for a worker started with that ``--role``."""
    for argument, following in zip(arguments, arguments[1:], strict=False):
        if argument == "--role" and following in STREAM_ROLES:
            return f"{STREAM} {following}"
    return None


def assign_parts(processes: Mapping[int, ProcessTimes], roots: Roots,
                 marks: StackMarks) -> dict[int, tuple[str | None, str | None]]:
    """pid -> (the part its own time counts for, the part its reaped children's time counts
    for); (None, None) for a process of no part (``other``)."""
    assigned: dict[int, tuple[str | None, str | None]] = {}
    for pid in processes:
        chain = ancestry(pid, processes)
        part: str | None = None
        for depth, current in enumerate(chain):
            if current == roots.bench:
                # The benchmark's own time is "bench"; its children (producers) are not.
                part = BENCH if depth == 0 else PRODUCERS
            elif current in (roots.stream, roots.sink):
                part = STREAM if current == roots.stream else SINK
                if part == STREAM:  # the nearest worker below the stream root names its role
                    part = next((role for below in chain[:depth]
                                 if (role := stream_worker_part(processes[below].arguments))),
                                STREAM)
            else:
                part = stack_part(processes[current].arguments, marks)
            if part is not None:
                break
        assigned[pid] = (part, PRODUCERS if pid == roots.bench else part)
    return assigned


def ancestry(pid: int, processes: Mapping[int, ProcessTimes]) -> list[int]:
    """``pid``, its parent, the parent's parent... as far as the snapshot knows them."""
    chain = [pid]
    while (parent := processes[chain[-1]].parent) in processes and parent not in chain:
        chain.append(parent)
    return chain


def part_seconds(before: Snapshot, after: Snapshot, roots: Roots,
                 marks: StackMarks) -> dict[str, float]:
    """CPU seconds each part used between the snapshots (``other`` included)."""
    parts = assign_parts(after.processes, roots, marks)
    seconds: dict[str, float] = defaultdict(float)

    def same(pid: int) -> ProcessTimes | None:
        earlier, later = before.processes.get(pid), after.processes.get(pid)
        return earlier if earlier and later and earlier.started == later.started else None

    for pid, now in after.processes.items():
        own_part, reaped_part = parts[pid]
        earlier = same(pid)
        if own_part:
            seconds[own_part] += now.own - (earlier.own if earlier else 0.0)
        if reaped_part:
            seconds[reaped_part] += now.reaped - (earlier.reaped if earlier else 0.0)
        seconds.setdefault(own_part or OTHER, 0.0)  # a part with a live process gets a line
    for pid, ended in before.processes.items():
        if same(pid) is not None:
            continue
        # Ended: its whole life is now in the reaped time of the nearest ancestor still
        # there (the one that waited for it); what it had used before the phase is not ours.
        survivor = next((current for current in ancestry(pid, before.processes)[1:]
                         if same(current) is not None), None)
        if survivor is not None and (reaped_part := parts[survivor][1]):
            seconds[reaped_part] -= ended.own + ended.reaped
    if not seconds.get(PRODUCERS):
        seconds.pop(PRODUCERS, None)  # a phase without child processes of the benchmark
    accounted = sum(value for part, value in seconds.items() if part != OTHER)
    # Busy time is sampled by the tick, a process's time by the scheduler: at least 0.
    seconds[OTHER] = max(0.0, after.busy - before.busy - accounted)
    return dict(seconds)


def phase_figures(seconds: Mapping[str, float], wall_seconds: float,
                  changes: int) -> dict[str, Any]:
    """The JSON figures: part -> CPU seconds, ms per change and cores; and the total's cores
    (every part, ``other`` included, over the phase's wall time)."""
    figures: dict[str, Any] = {}
    for part in ordered(seconds):
        figures[part] = {
            "cpu_seconds": round(seconds[part], 2),
            "ms_per_change": round(1000 * seconds[part] / changes, 3) if changes else None,
            "cores": round(seconds[part] / wall_seconds, 3) if wall_seconds > 0 else None,
        }
    total = sum(seconds.values())
    figures["cores"] = round(total / wall_seconds, 3) if wall_seconds > 0 else None
    figures["cpu_seconds"] = round(total, 2)
    figures["wall_seconds"] = round(wall_seconds, 1)
    figures["changes"] = changes
    return figures


def phase_cpu(before: Snapshot | None, after: Snapshot | None, roots: Roots,
              marks: StackMarks, changes: int) -> dict[str, Any] | None:
    """A phase's CPU figures from its two snapshots; None when there were none (no /proc)."""
    if before is None or after is None:
        return None
    return phase_figures(part_seconds(before, after, roots, marks), after.taken - before.taken,
                         changes)


def ordered(parts: Iterable[str]) -> list[str]:
    known = [part for part in PART_ORDER if part in parts]
    return known + sorted(set(parts) - set(PART_ORDER))


def table(figures: Mapping[str, Any], unit: str, cpus: int | None) -> list[str]:
    """The printed lines of a phase's CPU figures; ``unit`` names what a change is."""
    parts = [part for part in ordered(figures) if isinstance(figures[part], dict)]
    lines = [f"CPU by part ({figures['wall_seconds']:g} s of wall time; ms per {unit}):",
             f"  {'part':<16} {'CPU s':>9} {'ms/' + unit.split()[-1]:>12} {'cores':>7}"]

    def line(label: str, cpu_seconds: float, per_change: float | None,
             cores: float | None) -> str:
        per = "-" if per_change is None else f"{per_change:.2f}"
        share = "-" if cores is None else f"{cores:.2f}"
        return f"  {label:<16} {cpu_seconds:>9.1f} {per:>12} {share:>7}"

    for part in parts:
        row = figures[part]
        lines.append(line(part, row["cpu_seconds"], row["ms_per_change"], row["cores"]))
    changes, total = figures["changes"], figures["cpu_seconds"]
    lines.append(line("all", total, 1000 * total / changes if changes else None,
                      figures["cores"]) + (f" of {cpus}" if cpus else ""))
    return lines


# --------------------------------------------------------------------------- /proc


def snapshot() -> Snapshot | None:
    """Every process's CPU time and the machine's busy time now; None without /proc."""
    ticks = float(os.sysconf("SC_CLK_TCK"))
    try:
        busy = parse_busy_seconds((PROC / "stat").read_text(), ticks)
    except (OSError, ValueError):
        return None
    processes: dict[int, ProcessTimes] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent, started, own, reaped = parse_process_stat(
                (entry / "stat").read_text(), ticks)
            arguments = tuple(part.decode(errors="replace") for part in
                              (entry / "cmdline").read_bytes().split(b"\0") if part)
        except (OSError, IndexError, ValueError):
            continue  # ended while we read, or not ours to read
        processes[int(entry.name)] = ProcessTimes(parent, started, own, reaped, arguments)
    return Snapshot(time.monotonic(), busy, processes)
