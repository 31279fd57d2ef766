"""``tipsync model fit`` on the real stack: it reads the person records from the resolve
topic (latest event per record, deletes and other entities left out), fits a model, writes a
file the stream app can load, and refuses when there are too few records."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import NewTopic

from deploy.bench.stream import person_event
from deploy.bench.stream_harness import ROOT, StreamHarness
from schemas.config import Settings
from streams.resolve.model_file import DEFAULT_MODEL_FILE, read_model_file

PEOPLE = 500


@pytest.fixture(scope="module")
def harness(stack: Settings) -> Iterator[StreamHarness]:
    """A resolve topic as ingest fills it: '<entity>:<agency>:<record>' keys, the agency
    events' own bytes, a person at two agencies for every fifth one, one record deleted."""
    harness = StreamHarness(stack, entities=("person",)).setup()
    topic = harness.topics.resolve
    for future in harness.admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result()
    rng = random.Random(3)
    try:
        for index in range(PEOPLE):
            agencies = ("police-ctu", "immigration") if index % 5 == 0 else ("police-ctu",)
            for agency in agencies:
                event = person_event(index, agency, rng)
                key = f"person:{agency}:{event['source_record_id']}".encode()
                harness.publish_raw(topic, key, harness.encode("person", event))
        deleted = person_event(1, "police-ctu", rng)
        deleted.update(op="DELETE", payload=None, source_version=2)
        harness.publish_raw(topic, f"person:police-ctu:{deleted['source_record_id']}".encode(),
                            harness.encode("person", deleted))
        harness.flush()
        yield harness
    finally:
        harness.teardown()


def _tipsync(settings: Settings, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", *arguments], cwd=ROOT, capture_output=True,
        text=True, timeout=300, env={**os.environ, "TIPSYNC_HOME": str(settings.home)},
    )


def test_fit_writes_a_model_of_the_records_held_and_show_prints_it(
    harness: StreamHarness, tmp_path: Path
) -> None:
    out = tmp_path / "person-model.json"
    fitted = _tipsync(harness.settings, "model", "fit", "--topic-root", harness.prefix,
                      "--out", str(out), "--min-records", "300", "--random-pairs", "50000")
    assert fitted.returncode == 0, fitted.stderr
    records = PEOPLE + PEOPLE // 5 - 1
    assert f"{records} person records, 1 deleted, 0 undecodable" in fitted.stdout
    model_file = read_model_file(out)
    assert model_file.fitted is not None and model_file.fitted.records == records
    assert model_file.fingerprint != DEFAULT_MODEL_FILE.fingerprint
    model = model_file.model
    for field in ("family_name", "date_of_birth", "identifier"):
        assert model.weight(field, "exact") > 3, field
    assert model.review_threshold < model.match_threshold
    shown = _tipsync(harness.settings, "model", "show", str(out))
    assert shown.returncode == 0, shown.stderr
    assert f"scoring model {model_file.fingerprint}" in shown.stdout
    assert any(line.split()[:2] == ["identifier", "exact"] for line in shown.stdout.splitlines())
    # no personal data in the file: only field names, levels, numbers and the fit's date
    text = out.read_text()
    event = person_event(7, "police-ctu", random.Random(0))
    assert event["payload"]["family_name"] not in text and event["source_record_id"] not in text


def test_fit_refuses_too_few_records_and_writes_nothing(
    harness: StreamHarness, tmp_path: Path
) -> None:
    out = tmp_path / "person-model.json"
    refused = _tipsync(harness.settings, "model", "fit", "--topic-root", harness.prefix,
                       "--out", str(out))
    assert refused.returncode == 1
    assert f"{harness.topics.resolve} holds {PEOPLE + PEOPLE // 5 - 1} person " \
           "records; fitting needs at least 1000" in refused.stderr
    assert "--min-records" in refused.stderr
    assert not out.exists()
