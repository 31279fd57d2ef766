"""``bench e2e``'s CPU by part (deploy/bench/cpu_time.py): parsing /proc, recognising the
private stack's processes, the difference of two snapshots, the figures and their table."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.bench.cpu_time import (
    ProcessTimes,
    Roots,
    Snapshot,
    StackMarks,
    assign_parts,
    parse_busy_seconds,
    parse_process_stat,
    parse_schedstat,
    part_seconds,
    phase_cpu,
    phase_figures,
    snapshot,
    stack_part,
    stream_worker_part,
    table,
)
from deploy.bench.e2e import MainThread, resolve_worker

HOME = Path("/bench/e2e/stack")
MARKS = StackMarks.of(HOME)
SHARED = StackMarks.of(Path("/bench"))  # the machine's shared stack, a parent folder of HOME
KAFKA = ("/usr/bin/java", "-Xms256m", "-Dlog4j2.configurationFile=/x/log4j2.properties",
         f"-Dkafka.logs.dir={HOME}/logs", "-cp", "/cache/kafka/*", "kafka.Kafka",
         f"{HOME}/kafka/server.properties")
REGISTRY = ("/usr/bin/java", "-Xmx512m", f"-Djava.io.tmpdir={HOME}/registry",
            f"-Dvertx.cacheDirBase={HOME}/registry/vertx-cache", "-jar", "/cache/quarkus-run.jar")
POSTMASTER = ("/usr/lib/postgresql/15/bin/postgres", "-D", f"{HOME}/postgres/data", "-p",
              "30432")
STREAM_GROUP = ("python", "-m", "deploy.cli", "stream", "--workers", "2", "--role", "split")
RESOLVE = ("python", "-m", "deploy.cli", "stream", "--worker-index", "0", "--role", "resolve")
INGEST = ("python", "-m", "deploy.cli", "stream", "--worker-index", "1", "--role", "ingest")
ROOTS = Roots(bench=10, stream=20, sink=30)


def process(parent: int, own: float, reaped: float = 0.0, arguments: tuple[str, ...] = (),
            started: int = 1) -> ProcessTimes:
    return ProcessTimes(parent, started, own, reaped, arguments)


def test_process_stat_is_read_after_a_command_name_with_spaces_and_parentheses() -> None:
    text = ("4242 (odd ) name) S 17 4242 4242 0 -1 4194304 100 0 0 0 250 50 30 20 20 0 3 0 "
            "98765 1000 200 18446744073709551615")
    assert parse_process_stat(text, 100.0) == (17, 98765, 3.0, 0.5)


def test_busy_seconds_leave_out_idle_iowait_and_steal() -> None:
    text = "cpu  1000 10 300 5000 40 5 15 700 0 0\ncpu0 500 5 150 2500 20 2 7 350 0 0\n"
    assert parse_busy_seconds(text, 100.0) == pytest.approx(13.3)


def test_the_private_stacks_services_are_recognised_by_their_own_folders_only() -> None:
    assert stack_part(KAFKA, MARKS) == "kafka"
    assert stack_part(REGISTRY, MARKS) == "registry"
    assert stack_part(POSTMASTER, MARKS) == "postgresql"
    # The shared stack's home is a prefix of the private one's paths: still not the same.
    assert {stack_part(arguments, SHARED) for arguments in (KAFKA, REGISTRY, POSTMASTER)} == {
        None}
    assert stack_part(("postgres: tipsync_sink tipsync 127.0.0.1(51442) idle",), MARKS) is None


def test_a_stream_worker_is_named_by_its_role_and_the_group_is_not() -> None:
    assert stream_worker_part(RESOLVE) == "stream resolve"
    assert stream_worker_part(INGEST) == "stream ingest"
    assert stream_worker_part(STREAM_GROUP) is None
    assert stream_worker_part(("stream", "--role", "all")) is None


def test_every_process_belongs_to_its_nearest_recognised_ancestor() -> None:
    processes = {
        1: process(0, 0.0),
        10: process(1, 0.0),  # the benchmark
        11: process(10, 0.0, arguments=("tipsync", "produce")),
        20: process(10, 0.0, arguments=STREAM_GROUP),
        21: process(20, 0.0, arguments=RESOLVE),
        22: process(20, 0.0, arguments=INGEST),
        30: process(10, 0.0, arguments=("tipsync", "sink")),
        40: process(1, 0.0, arguments=POSTMASTER),
        41: process(40, 0.0, arguments=("postgres: walwriter",)),
        50: process(1, 0.0, arguments=KAFKA),
        60: process(1, 0.0, arguments=RESOLVE),  # another engineer's worker: not ours
    }
    parts = assign_parts(processes, ROOTS, MARKS)
    assert parts[10] == ("bench", "producers")
    assert parts[11] == ("producers", "producers")
    assert parts[20] == ("stream", "stream")
    assert parts[21] == ("stream resolve", "stream resolve")
    assert parts[22] == ("stream ingest", "stream ingest")
    assert parts[30] == ("sink", "sink")
    assert parts[41] == ("postgresql", "postgresql")
    assert parts[50] == ("kafka", "kafka")
    assert parts[60] == (None, None)
    assert parts[1] == (None, None)


def test_the_difference_counts_new_processes_from_zero_and_ended_ones_once() -> None:
    before = Snapshot(taken=100.0, busy=1000.0, processes={
        10: process(1, 5.0, reaped=1.0),
        20: process(10, 50.0),
        40: process(1, 2.0, reaped=30.0, arguments=POSTMASTER),
        41: process(40, 4.0),  # a backend that ends during the phase
        50: process(1, 100.0, arguments=KAFKA),
    })
    after = Snapshot(taken=110.0, busy=1030.0, processes={
        10: process(1, 6.0, reaped=4.0),  # a producer of 3 s came and went
        20: process(10, 58.0),
        40: process(1, 2.5, reaped=36.0, arguments=POSTMASTER),  # backend 41's 6 s in all
        42: process(40, 1.5),  # a backend that started during the phase
        50: process(1, 103.0, arguments=KAFKA),
    })
    seconds = part_seconds(before, after, Roots(bench=10, stream=20), MARKS)
    assert seconds == pytest.approx({"bench": 1.0, "producers": 3.0, "stream": 8.0,
                                     "postgresql": 0.5 + (6.0 - 4.0) + 1.5, "kafka": 3.0,
                                     "other": 30.0 - 19.0})


def test_a_reused_pid_is_a_new_process() -> None:
    before = Snapshot(0.0, 0.0, {50: process(1, 100.0, arguments=KAFKA, started=5)})
    after = Snapshot(1.0, 10.0, {50: process(1, 2.0, arguments=KAFKA, started=9)})
    assert part_seconds(before, after, Roots(bench=10), MARKS)["kafka"] == pytest.approx(2.0)


def test_a_phase_without_child_processes_has_no_producers_line() -> None:
    quiet = Snapshot(0.0, 0.0, {10: process(1, 1.0, reaped=2.0)})
    later = Snapshot(1.0, 1.0, {10: process(1, 1.5, reaped=2.0)})
    assert part_seconds(quiet, later, Roots(bench=10), MARKS) == {"bench": 0.5, "other": 0.5}


def test_figures_give_ms_per_change_and_cores() -> None:
    figures = phase_figures({"other": 1.0, "sink": 4.0, "stream resolve": 15.0},
                            wall_seconds=10.0, changes=1000)
    assert list(figures)[:3] == ["stream resolve", "sink", "other"]
    assert figures["stream resolve"] == {"cpu_seconds": 15.0, "ms_per_change": 15.0,
                                         "cores": 1.5}
    assert figures["cores"] == 2.0
    assert figures["cpu_seconds"] == 20.0
    lines = table(figures, "person record", cpus=2)
    assert lines[1].split() == ["part", "CPU", "s", "ms/record", "cores"]
    assert lines[2].split() == ["stream", "resolve", "15.0", "15.00", "1.50"]
    assert lines[-1].split() == ["all", "20.0", "20.00", "2.00", "of", "2"]


def test_no_snapshot_means_no_figures() -> None:
    assert phase_cpu(None, None, Roots(bench=1), MARKS, 10) is None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_a_snapshot_sees_this_process_spin() -> None:
    before = snapshot()
    began = time.process_time()
    while time.process_time() - began < 0.2:
        pass
    after = snapshot()
    assert before is not None and after is not None
    seconds = part_seconds(before, after, Roots(bench=os.getpid()), MARKS)
    assert 0.15 <= seconds["bench"] <= 1.0
    assert after.busy - before.busy >= 0.15


def test_schedstat_gives_seconds_on_a_cpu_and_waiting_for_one() -> None:
    assert parse_schedstat("2500000000 750000000 1234\n") == (2.5, 0.75)


@pytest.mark.skipif(not Path("/proc/self/schedstat").exists(), reason="needs schedstat")
def test_a_spinning_main_thread_is_on_a_cpu_or_waiting_for_one_all_the_time() -> None:
    thread = MainThread.of(os.getpid())
    assert thread is not None
    began = time.monotonic()
    while time.monotonic() - began < 0.3:
        pass
    found = thread.since()
    assert found is not None
    # never asleep: whatever else the machine runs, the two add up to the wall time
    assert 800 <= found["on_cpu_ms_per_second"] + found["waiting_ms_per_second"] <= 1100


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux's /proc")
def test_the_resolving_process_is_the_only_worker_or_none() -> None:
    assert resolve_worker(Roots(bench=os.getpid())) is None  # no stream process
    # a process without worker children: as a lone `tipsync stream` it would resolve
    lone = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert resolve_worker(Roots(bench=0, stream=lone.pid)) == lone.pid
    finally:
        lone.kill()
        lone.wait()
