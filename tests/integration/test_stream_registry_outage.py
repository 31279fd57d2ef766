"""A worker that starts while the schema registry cannot reach its database waits for it:
valid events are never dead-lettered for the registry's fault (real stack, private).

Found by `tipsync bench faults` (seed 6, session 6): three valid records in the ingest
dead-letter topic after PostgreSQL was restarted under a running stack. Apicurio keeps its
schemas in PostgreSQL; while that is away it answers a schema it has not served since it
started with HTTP 500 ("PSQLException: terminating connection"), and ingest took the refusal
for the message's fault.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from private_stack import running_private_stack

from deploy.bench.stream_harness import StreamHarness
from deploy.stack.layout import StateLayout
from deploy.stack.postgres import Postgres
from schemas import config
from schemas.config import Settings, load_settings
from schemas.examples import example_event, example_uuid
from streams.ingest import entity_golden_id

PORT_BASE = 29000
POLICE = "police-ctu"


@pytest.fixture()
def private(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    # A stack of its own: the shared one's registry has served every schema already (and
    # keeps them in memory), and stopping its PostgreSQL would disturb the other tests.
    with running_private_stack(port_base=PORT_BASE) as env:
        admin_file = config.local_client_file(Path(env[config.HOME]), config.DEFAULT_PRINCIPAL)
        for name, value in {**env, config.CLIENT_CONFIG: str(admin_file)}.items():
            monkeypatch.setenv(name, value)  # the harness's workers inherit them
        yield load_settings()


def _event(entity: str, record: str) -> dict[str, object]:
    return example_event(entity, POLICE, record, event_id=example_uuid(f"outage:{record}"))


def test_events_wait_for_a_registry_whose_database_is_down(private: Settings) -> None:
    harness = StreamHarness(private, agencies=(POLICE,), entities=("person", "case"),
                            partitions=1).setup()
    postgres = Postgres(private, StateLayout(private.home, private.cache))
    try:
        harness.publish("case", _event("case", "C-OUTAGE"))
        harness.publish("person", _event("person", "P-OUTAGE"))
        harness.flush()
        postgres.stop()
        try:
            harness.start_worker()
            # The worker has met the registry's refusal: it says it waits (or, before the
            # fix, it dead-lettered the event).
            harness.wait_for(
                lambda: "did not answer" in harness.worker_log()
                or harness.count(harness.topics.dlq("ingest")) > 0,
                timeout=180, what="the worker meeting the registry's refusal",
            )
            assert harness.count(harness.topics.dlq("ingest")) == 0
        finally:
            postgres.start()
            postgres.wait()
        harness.wait_for(harness.caught_up, timeout=180, what="the events after the outage")
        cases = harness.latest(harness.topics.reconciled("case"))
        assert set(cases) == {entity_golden_id("case", POLICE, "C-OUTAGE")}
        assert set(harness.latest(harness.topics.person_mapping)) == {f"{POLICE}:P-OUTAGE"}
        for stage in ("ingest", "resolve"):
            assert harness.count(harness.topics.dlq(stage)) == 0, stage
    finally:
        print(harness.worker_log()[-6000:])  # shown when the test fails
        harness.teardown()
