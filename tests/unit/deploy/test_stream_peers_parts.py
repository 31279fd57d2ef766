"""The pure parts of ``bench stream --peers``: its figures, the check of an output, the peers'
per-message work (with a stand-in for the registry's deserializer) and the quix-streams
environment's pins."""

from __future__ import annotations

import os
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from deploy.bench import stream_peers_env
from deploy.bench.stream import person_event
from deploy.bench.stream_peers import (
    EngineRun,
    completeness,
    context_switches,
    figures,
    parse_switches,
    ratio,
    table,
)
from deploy.bench.stream_peers_work import IngestWork
from schemas.errors import WireFormatError
from schemas.topics import TopicNames

TOPICS = TopicNames("peerstest")
PERSON_TOPIC = TOPICS.agency("police-ctu", "person")


def test_engine_run_times_only_what_came_after_the_first_poll() -> None:
    run = EngineRun("faust", events=50_000, before=2_000, seconds=4.8, cpu_seconds=6.0)
    assert run.timed == 48_000
    assert run.events_per_second == pytest.approx(10_000)
    assert run.cpu_per_thousand == pytest.approx(0.125)


def test_a_run_with_nothing_timed_has_no_figures_rather_than_a_division_by_zero() -> None:
    run = EngineRun("bare", events=500, before=500, seconds=0.0, cpu_seconds=0.0)
    assert run.events_per_second is None and run.cpu_per_thousand is None
    assert ratio(None, 10.0) is None and ratio(5.0, None) is None and ratio(5.0, 0.0) is None


def test_figures_and_table_put_each_engine_against_the_bare_loop() -> None:
    bare = EngineRun("bare", 10_000, 0, 1.0, 0.5)
    faust = EngineRun("faust", 10_000, 0, 4.0, 2.0)
    assert figures(faust, bare) == {
        "events": 10_000, "timed": 10_000, "seconds": 4.0, "events_per_second": 2_500,
        "cpu_seconds_per_1000": 0.2, "context_switches_per_1000": 0.0, "threads": 0,
        "rate_vs_bare": 0.25, "cpu_vs_bare": 4.0,
    }
    header, faust_line, bare_line = table([faust, bare])
    assert header.split()[:3] == ["engine", "events/s", "CPU"]
    assert faust_line.split()[:5] == ["faust", "2,500", "0.200", "0.25", "4.00"]
    assert bare_line.split()[:5] == ["bare", "10,000", "0.050", "1.00", "1.00"]


def test_context_switches_are_summed_over_a_status_and_over_threads() -> None:
    status = ("Name:\tpython\nThreads:\t3\nvoluntary_ctxt_switches:\t120\n"
              "nonvoluntary_ctxt_switches:\t7\n")
    assert parse_switches(status) == 127
    run = EngineRun("faust", 2_000, 0, 1.0, 0.5, switches=3_000, threads=4)
    assert run.switches_per_thousand == pytest.approx(1_500)
    switches, threads = context_switches(os.getpid())  # this process: real /proc
    assert threads >= 1 and switches > 0


def test_completeness_counts_duplicates_missing_and_unexpected_keys() -> None:
    expected = {b"a", b"b", b"c"}
    whole = completeness(expected, [b"a", b"b", b"c", b"a"])
    assert whole.complete and (whole.messages, whole.distinct) == (4, 3)
    assert "1 duplicates" in whole.describe() and "complete" in whole.describe()
    short = completeness(expected, [b"a", b"x", None])
    assert not short.complete
    assert (short.missing, short.unexpected) == (2, 2)
    assert "INCOMPLETE" in short.describe()


def _event(index: int = 1, **changes: Any) -> dict[str, Any]:
    return {**person_event(index, "police-ctu", random.Random(index)), **changes}


def _work(records: dict[bytes, dict[str, Any]]) -> IngestWork:
    """The work with a stand-in deserializer: value bytes -> the record they stand for."""

    def deserialize(value: bytes, expected: str | None = None) -> Any:
        if value not in records:
            raise WireFormatError("message starts with byte 1, not the magic byte 0")
        assert expected == "person"
        return SimpleNamespace(record=records[value])

    return IngestWork(deserialize, TOPICS)


def test_an_accepted_event_is_forwarded_as_it_came_keyed_by_its_held_key() -> None:
    event = _event()
    work = _work({b"v1": event})
    forward = work(PERSON_TOPIC, f"police-ctu:{event['source_record_id']}".encode(), b"v1",
                   {}.get)
    assert forward is not None
    assert forward.key == f"person:police-ctu:{event['source_record_id']}".encode()
    assert forward.value == b"v1"
    assert forward.held_json == [1, [event["event_id"]]]
    assert forward.changelog() == (f'"{forward.held_key}"'.encode(),
                                   f'[1,["{event["event_id"]}"]]'.encode())
    assert work.tally.as_dict() == {"forwarded": 1, "dropped": 0, "rejected": 0}


def test_replays_and_stale_versions_are_dropped_against_the_held_entry() -> None:
    event = _event()
    key = f"police-ctu:{event['source_record_id']}".encode()
    stale = _event(event_id="00000000-0000-4000-8000-000000000001")
    work = _work({b"v1": event, b"stale": stale})
    held: dict[str, Any] = {}
    first = work(PERSON_TOPIC, key, b"v1", held.get)
    assert first is not None
    held[first.held_key] = first.held_json
    assert work(PERSON_TOPIC, key, b"v1", held.get) is None  # the same event again
    assert work(PERSON_TOPIC, key, b"stale", held.get) is None  # another event, same version
    assert work.tally.as_dict() == {"forwarded": 1, "dropped": 2, "rejected": 0}


def test_what_does_not_decode_or_check_is_counted_as_a_dead_letter() -> None:
    event = _event()
    work = _work({b"v1": event})
    assert work(PERSON_TOPIC, b"police-ctu:someone-else", b"v1", {}.get) is None  # key
    assert work(PERSON_TOPIC, b"police-ctu:x", b"garbage", {}.get) is None  # bytes
    assert work(PERSON_TOPIC, b"police-ctu:x", None, {}.get) is None  # a tombstone: nothing
    assert work.tally.as_dict() == {"forwarded": 0, "dropped": 0, "rejected": 2}


def test_the_work_refuses_topics_it_does_not_forward() -> None:
    work = _work({})
    with pytest.raises(ValueError, match="not an agency topic"):
        work("elsewhere.person", b"k", b"v", {}.get)
    with pytest.raises(ValueError, match="not case"):
        work(TOPICS.agency("police-ctu", "case"), b"k", b"v", {}.get)


def test_the_quix_environment_pins_quixstreams_and_tipsyncs_own_versions(
        tmp_path: Path) -> None:
    wanted = stream_peers_env.requirements()
    assert wanted[0] == stream_peers_env.QUIXSTREAMS and "==" in wanted[0]
    assert all("==" in requirement for requirement in wanted)
    assert {requirement.split("==")[0] for requirement in wanted[1:]} == set(
        stream_peers_env.DECODE_IMPORTS)
    folder = tmp_path / "quix-venv"
    assert not stream_peers_env.is_current(folder, wanted)
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "python").touch()
    (folder / stream_peers_env.MARKER).write_text("\n".join(wanted) + "\n")
    assert stream_peers_env.is_current(folder, wanted)
    assert not stream_peers_env.is_current(folder, [*wanted[:-1], "anyascii==0.0.1"])
