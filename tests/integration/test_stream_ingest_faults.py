"""An unexpected exception in a stage loses nothing: the message becomes a dead letter with
reason ``processing_error`` and the stream goes on (real stack, one real worker process).

The worker runs the ordinary ``tipsync stream`` CLI through this file (see ``__main__``
below), which first replaces one pure function of each stage by one that raises for a single
chosen source record, with a message quoting the record's fields as a real bug's message
might. Agency topics have one partition, so "before" and "after" are the order the worker
reads.
"""

from __future__ import annotations

import socket
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from deploy.bench.stream_harness import StreamHarness
from schemas.config import Settings
from schemas.examples import example_event, example_uuid
from streams.ingest import entity_golden_id

POLICE = "police-ctu"
FAILING_CASE, FAILING_PERSON = "C-FAIL", "P-FAIL"
# what the injected exceptions say; none of it may reach a dead letter or the log
QUOTED_FIELDS = "Odessa Inventa"


def _install_faults() -> None:
    """Make ingest fail on case C-FAIL and resolve fail on person P-FAIL."""
    import streams.ingest_handler
    import streams.resolve_stage

    golden_entity = streams.ingest_handler.golden_entity
    person_fields = streams.resolve_stage.person_fields

    def failing_golden_entity(event: Any) -> Any:
        if event.source_record_id == FAILING_CASE:
            raise ValueError(f"cannot file the case of {QUOTED_FIELDS}")
        return golden_entity(event)

    def failing_person_fields(event: Any) -> Any:
        if event.source_record_id == FAILING_PERSON:
            raise KeyError(f"no cluster for {QUOTED_FIELDS}")
        return person_fields(event)

    streams.ingest_handler.golden_entity = failing_golden_entity  # type: ignore[assignment]
    streams.resolve_stage.person_fields = failing_person_fields  # type: ignore[assignment]


def _case(record: str) -> dict[str, Any]:
    return example_event("case", POLICE, record, event_id=example_uuid(f"faults:{record}"))


def _person(record: str, given_name: str, trn: str) -> dict[str, Any]:
    event = example_event("person", POLICE, record, event_id=example_uuid(f"faults:{record}"))
    event["payload"].update(given_name=given_name, identifiers=[
        {"scheme": "TRN", "value": trn, "issuing_country": "JM"}])
    return event


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def run(stack: Settings) -> Iterator[tuple[StreamHarness, int]]:
    harness = StreamHarness(stack, agencies=(POLICE,), entities=("person", "case"),
                            partitions=1).setup()
    for record in ("C-BEFORE", FAILING_CASE, "C-AFTER"):
        harness.publish("case", _case(record))
    for record, name, trn in (("P-BEFORE", "Maribel", "900000001"),
                              (FAILING_PERSON, "Quenton", "900000002"),
                              ("P-AFTER", "Lisandra", "900000003")):
        harness.publish("person", _person(record, name, trn))
    harness.flush()
    port = _free_port()
    harness.start_worker(extra=["--metrics-port", str(port)], command=[__file__])
    try:
        harness.wait_for(harness.caught_up, timeout=90, what="the run with failing events")
        yield harness, port
    finally:
        harness.teardown()


def test_an_unexpected_error_in_ingest_sends_the_event_to_the_dead_letter_topic(
    run: tuple[StreamHarness, int],
) -> None:
    harness, _ = run
    [letter] = harness.read(harness.topics.dlq("ingest"))
    assert letter.key == f"{POLICE}:{FAILING_CASE}".encode()
    assert letter.value == harness.encode("case", _case(FAILING_CASE))  # kept unchanged
    assert letter.headers["tipsync.reason"] == "processing_error"
    detail = letter.headers["tipsync.detail"]
    assert "ValueError" in detail and "failing_golden_entity" in detail
    assert QUOTED_FIELDS not in detail
    cases = harness.latest(harness.topics.reconciled("case"))
    assert set(cases) == {entity_golden_id("case", POLICE, r) for r in ("C-BEFORE", "C-AFTER")}


def test_an_unexpected_error_in_resolve_sends_the_record_to_the_dead_letter_topic_and_rebuilds(
    run: tuple[StreamHarness, int],
) -> None:
    harness, _ = run
    [letter] = harness.read(harness.topics.dlq("resolve"))
    assert letter.key == f"person:{POLICE}:{FAILING_PERSON}".encode()
    assert letter.headers["tipsync.reason"] == "processing_error"
    assert "KeyError" in letter.headers["tipsync.detail"]
    assert QUOTED_FIELDS not in letter.headers["tipsync.detail"]
    mapping = harness.latest(harness.topics.person_mapping)
    assert set(mapping) == {f"{POLICE}:P-BEFORE", f"{POLICE}:P-AFTER"}
    people = harness.latest(harness.topics.reconciled("person"))
    assert all(people[entry["person_id"]] for entry in mapping.values())
    log = harness.worker_log()
    # the resolver was forgotten after the error and rebuilt for the next record
    assert "resolve: rebuilding from" in log and "rebuilt from 1 records" in log
    assert QUOTED_FIELDS not in log


def test_processing_errors_are_counted_per_stage(run: tuple[StreamHarness, int]) -> None:
    _, port = run
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for stage in ("ingest", "resolve"):
        assert f'tipsync_stream_dead_letters_total{{reason="processing_error",stage="{stage}"}}' \
            ' 1.0' in text


if __name__ == "__main__":  # the worker process of this module's fixture
    from deploy.cli import main

    _install_faults()
    sys.exit(main(sys.argv[1:]))
