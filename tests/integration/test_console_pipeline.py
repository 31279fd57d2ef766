"""The console over a running pipeline, in headless Chromium: a steward splits a golden
person and the person page follows once the resolver and the sink have applied it; the status
page shows the sink's lag rising while the sink is stopped and back to zero after it restarts.

The pipeline runs under a topic root of its own (``StreamHarness``): one stream worker and
one sink writing a throwaway database. The service principals' ACLs cover the ``tip`` root
only, so here the console reads and writes Kafka with the admin's client file
(``--steward-config``/``--monitor-config``), as the other stewardship tests do. People are
synthetic.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from deploy.bench.scratch import scratch_database
from deploy.bench.stream_harness import ROOT, StreamHarness
from deploy.cli import main
from deploy.operations.analysts import admin_conninfo, remove_analyst
from schemas import config
from schemas.config import Settings
from schemas.examples import example_event, example_uuid
from sinks.migrate import migrate
from sinks.roles import SINK_ROLE, conninfo_as
from tests.integration.test_console import (
    Login,
    chromium,
    running_console,
    screenshot,
    sign_in,
    submit_and_wait,
)

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
CONSOLE_PORT = 20091
# The pipeline's metrics ports, inside this stack's port range (the defaults may be another
# stack's on a shared machine); the console looks there through the same variables.
STREAM_METRICS_PORT, SINK_METRICS_PORT = 20100, 20101
POLICE, IMMIGRATION = "police-ctu", "immigration"
TIMEOUT = 180.0


def _person(agency: str, record: str, version: int = 1, **payload: Any) -> dict[str, Any]:
    event = example_event("person", agency, record, source_version=version,
                          event_id=example_uuid(f"console:{RUN}:{agency}:{record}:{version}"))
    event["payload"].update(payload)
    event["classification"] = "OFFICIAL"
    return event


def wait_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout:g} s")


class Pipeline:
    """A stream worker and a sink over the harness's topics, into a throwaway database."""

    def __init__(self, harness: StreamHarness, url: str, logs: Path) -> None:
        self.harness, self.url, self.logs = harness, url, logs
        self.sink: subprocess.Popen[bytes] | None = None

    def start_sink(self) -> None:
        log = (self.logs / "sink.log").open("ab")
        self.sink = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "sink", "--topic-root", self.harness.prefix,
             "--database-url", conninfo_as(self.url, SINK_ROLE), "--batch-seconds", "0.2",
             "--metrics-port", str(SINK_METRICS_PORT)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def stop_sink(self) -> None:
        assert self.sink is not None
        self.sink.send_signal(signal.SIGTERM)
        self.sink.wait(timeout=60)
        self.sink = None

    def sources_of(self, person_id: str) -> set[str]:
        with psycopg.connect(self.url) as connection:
            rows = connection.execute(
                "SELECT agency_id || ':' || source_record_id FROM reconciled.person_source"
                " WHERE person_id = %s AND NOT deleted", (person_id,)).fetchall()
        return {row[0] for row in rows}

    def golden_of(self, key: str) -> str | None:
        agency, record = key.split(":", 1)
        with psycopg.connect(self.url) as connection:
            row = connection.execute(
                "SELECT person_id FROM reconciled.person_source WHERE agency_id = %s"
                " AND source_record_id = %s", (agency, record)).fetchone()
        return str(row[0]) if row else None


@pytest.fixture(scope="module")
def pipeline(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    harness = StreamHarness(stack, entities=("person",)).setup()
    try:
        with scratch_database(stack.database_url, "test_console_pipe") as url:
            migrate(url)
            running = Pipeline(harness, url, tmp_path_factory.mktemp("console-pipeline"))
            harness.start_worker(extra=("--metrics-port", str(STREAM_METRICS_PORT)))
            running.start_sink()
            try:
                yield running
            finally:
                if running.sink is not None:
                    running.stop_sink()
    finally:
        harness.teardown()


@pytest.fixture(scope="module")
def steward(pipeline: Pipeline, stack: Settings,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    out = tmp_path_factory.mktemp("console-steward") / "steward.uri"
    name = f"console_{RUN}_steward"
    assert main(["analyst", "add", name, "--clearance", "VICTIM_PROTECTED", "--steward",
                 "--out", str(out), "--database-url", pipeline.url]) == 0
    password = out.with_name(out.name + ".pgpass").read_text().strip().rsplit(":", 1)[1]
    try:
        yield name, password
    finally:
        remove_analyst(admin_conninfo(pipeline.url, stack.pgpass_file), name)


@pytest.fixture(scope="module")
def console(pipeline: Pipeline, stack: Settings) -> Iterator[str]:
    with running_console(stack, CONSOLE_PORT, pipeline.url, pipeline.harness.prefix,
                         {config.STREAM_METRICS_PORT: str(STREAM_METRICS_PORT),
                          config.SINK_METRICS_PORT: str(SINK_METRICS_PORT)}) as url:
        yield url


@pytest.fixture
def browser(stack: Settings, tmp_path: Path) -> Iterator[webdriver.Chrome]:
    with chromium(stack, tmp_path / "profile") as session:
        yield session


def test_a_steward_splits_a_person_and_the_person_page_follows(
    pipeline: Pipeline, steward: tuple[str, str], console: str, browser: webdriver.Chrome,
) -> None:
    police, immigration = f"{POLICE}:P-{RUN}", f"{IMMIGRATION}:I-{RUN}"
    pipeline.harness.publish("person", _person(POLICE, f"P-{RUN}"))
    pipeline.harness.publish("person", _person(IMMIGRATION, f"I-{RUN}"))
    pipeline.harness.flush()
    wait_until(lambda: (pipeline.golden_of(police) is not None
                        and pipeline.golden_of(police) == pipeline.golden_of(immigration)),
               "the two records merged into one golden person in the store")
    golden = pipeline.golden_of(police)
    assert golden is not None
    name, password = steward
    sign_in(browser, console, Login(name, password))
    browser.get(f"{console}/person/{golden}")
    sources = browser.find_element(By.ID, "sources-table").text
    assert f"P-{RUN}" in sources and f"I-{RUN}" in sources
    browser.find_element(By.LINK_TEXT, "Split this person (steward)").click()
    browser.find_element(By.CSS_SELECTOR, f"input[value='{immigration}']").click()
    browser.find_element(By.ID, "reason").send_keys("two sisters, per the case file")
    screenshot(browser, "split")
    submit_and_wait(browser, "#split button[type=submit]")
    assert "published" in browser.find_element(By.CSS_SELECTOR, ".notice").text
    wait_until(lambda: pipeline.golden_of(police) != pipeline.golden_of(immigration),
               "the split applied by the resolver and written by the sink")

    def page_shows_one_record() -> bool:
        browser.get(f"{console}/person/{pipeline.golden_of(police)}")
        text = browser.find_element(By.ID, "sources-table").text
        return f"P-{RUN}" in text and f"I-{RUN}" not in text

    wait_until(page_shows_one_record, "the person page showing the police record alone")
    screenshot(browser, "person-after-split")


def _sink_lag(browser: webdriver.Chrome, console: str, group: str) -> int | None:
    browser.get(f"{console}/status")
    for row in browser.find_elements(By.CSS_SELECTOR, "#lag-table tbody tr"):
        cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        if cells and cells[0] == group:
            return int(cells[2])
    return None


def test_the_status_page_shows_lag_rising_while_the_sink_is_stopped_and_back_to_zero(
    pipeline: Pipeline, steward: tuple[str, str], console: str, browser: webdriver.Chrome,
) -> None:
    group = pipeline.harness.topics.sink_group
    sign_in(browser, console, Login(*steward))
    wait_until(lambda: _sink_lag(browser, console, group) == 0, "the sink caught up")
    pipeline.stop_sink()
    for index in range(20):
        pipeline.harness.publish("person", _person(POLICE, f"L{index}-{RUN}",
                                                   given_name=f"Lag{index}"))
    pipeline.harness.flush()
    wait_until(lambda: (_sink_lag(browser, console, group) or 0) > 0,
               "the sink's lag rising on the status page while the sink is stopped")
    services = browser.find_element(By.ID, "services-table").text
    assert f"{group}; metrics port {SINK_METRICS_PORT} not answering" in services
    screenshot(browser, "status-lag")
    pipeline.start_sink()
    wait_until(lambda: _sink_lag(browser, console, group) == 0,
               "the sink's lag back to zero after it restarted")
    services = browser.find_element(By.ID, "services-table").text
    assert f"{group}; metrics port {SINK_METRICS_PORT} answering" in services
    assert "1 answering on metrics ports" in services
    stream = pipeline.harness.topics.stream_group
    assert f"1 member connected in group {stream}" in services
    assert stream in browser.find_element(By.ID, "lag-table").text
    screenshot(browser, "status")
