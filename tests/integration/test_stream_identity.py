"""Identity from the topic, not the envelope, through a real stream worker (the real stack).

A forged ``source_version`` (2^63-1) would make every later genuine change of the record
stale: ingest sends it to ``tip.dlq.ingest`` (``future_version``) and the next genuine change
is applied. A topic matching the agency pattern whose agency is not in the registry is never
read: its events reach neither the outputs nor the dead letters. A label below the agency's
own (police-ctu: SENSITIVE) is raised to it and flagged, the record kept (issue 15).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deploy.bench.stream_harness import StreamHarness
from schemas.config import Settings
from schemas.examples import example_event, example_uuid
from streams.ingest import entity_golden_id

POLICE = "police-ctu"
UNREGISTERED = "not-in-the-registry"
LONG_MAX = 2**63 - 1


def _case(record: str, version: int, label: str, agency: str = POLICE,
          **envelope: Any) -> dict[str, Any]:
    return example_event("case", agency, record, source_version=version,
                         event_id=example_uuid(f"{agency}:{record}:{label}"), **envelope)


@pytest.fixture(scope="module")
def run(stack: Settings) -> Iterator[StreamHarness]:
    harness = StreamHarness(stack, agencies=(POLICE,), entities=("case",)).setup()
    harness.create_agency_topics([UNREGISTERED], ["case"])
    try:
        harness.publish("case", _case("F-1", 1, "genuine 1"))
        harness.publish("case", _case("F-1", LONG_MAX, "forged"))
        harness.publish("case", _case("F-1", 2, "genuine 2"))
        harness.publish("case", _case("F-2", 1, "from the future",
                                      event_time=datetime.now(UTC) + timedelta(days=30)))
        harness.publish("case", _case("U-1", 1, "unregistered", agency=UNREGISTERED))
        harness.publish("case", _case("L-1", 1, "labelled low", classification="OFFICIAL"))
        harness.flush()
        harness.start_worker()
        harness.wait_for(harness.caught_up, timeout=120, what="the scripted run")
        yield harness
    finally:
        harness.teardown()


def test_a_forged_version_is_a_dead_letter_and_the_next_genuine_change_applies(
    run: StreamHarness,
) -> None:
    letters = {m.key: m.headers for m in run.read(run.topics.dlq("ingest"))}
    assert letters[b"police-ctu:F-1"]["tipsync.reason"] == "future_version"
    assert str(LONG_MAX) not in letters[b"police-ctu:F-1"]["tipsync.detail"]
    assert letters[b"police-ctu:F-2"]["tipsync.reason"] == "future_event_time"
    versions = [
        run.decode(m.value)["golden_version"]
        for m in run.read(run.topics.reconciled("case"))
        if m.key == entity_golden_id("case", POLICE, "F-1").encode()
    ]
    assert versions == [1, 2]


def test_an_unregistered_agency_s_topic_is_never_read(run: StreamHarness) -> None:
    unregistered_key = entity_golden_id("case", UNREGISTERED, "U-1").encode()
    assert all(m.key != unregistered_key for m in run.read(run.topics.reconciled("case")))
    assert all(m.key != b"not-in-the-registry:U-1" for m in run.read(run.topics.dlq("ingest")))
    log = "".join(path.read_text(errors="replace")
                  for path in run.logs.glob(f"{run.prefix}-worker-*.log"))
    skipped = run.agency_topic(UNREGISTERED, "case")
    assert f"ingest skips topic {skipped}" in log
    assert log.count(f"ingest skips topic {skipped}") == 1


def test_a_label_below_the_agency_s_own_is_raised_and_flagged(run: StreamHarness) -> None:
    golden = run.latest(run.topics.reconciled("case"))[entity_golden_id("case", POLICE, "L-1")]
    assert golden["classification"] == "SENSITIVE"
    assert {"field": "classification", "problem": "below_agency_classification"} in (
        golden["sources"][0]["quality_issues"]
    )
