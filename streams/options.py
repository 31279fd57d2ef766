"""How one stream worker runs (``StreamOptions``): its topic root, store, ports, discovery
interval, scoring model file and snapshot schedule.

Kept apart from the app so the CLI, the tests and the benchmarks can build and read options
without importing faust. Its environment variables are read through ``schemas.config``, the
one settings surface.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas import config
from schemas.topics import ROOT, TopicNames
from streams.metrics import DEFAULT_METRICS_PORT
from streams.snapshot import SnapshotPolicy

# What a worker runs (``tipsync stream --role``): ``all`` both stages; ``ingest`` the agency
# topics and stewards' decisions; ``resolve`` the single resolve partition and nothing else,
# so that resolve has a core of its own and ingest scales with workers and partitions. Every
# role joins the same consumer group: Kafka gives the resolve partition to one worker at a
# time, and its committed offsets carry over when a deployment changes roles.
ROLES = ("all", "ingest", "resolve")
# ``tipsync stream --role split --workers N``: worker 0 resolves, the others ingest
SPLIT = "split"


@dataclass(frozen=True)
class StreamOptions:
    """How one worker runs. ``topic_root`` replaces ``tip`` in every topic name (tests use a
    root of their own so parallel runs never share topics or consumer groups)."""

    topic_root: str = ROOT
    app_id: str | None = None  # default '<root>.internal.stream' (also the consumer group)
    store: str = "rocksdb"  # rocksdb | memory
    worker_index: int = 0
    web_port: int | None = None  # None: faust's web server stays off
    metrics_port: int | None = DEFAULT_METRICS_PORT  # None: no metrics endpoint
    discovery_interval_seconds: float = 30.0
    partitions: int | None = None  # of agency topics; None: as the broker has them
    loglevel: str = "warning"
    # A scoring model file (`tipsync model fit`); None: the reasoned default weights.
    model_path: str | None = None
    # Resolve snapshots (streams.snapshot): every so many resolve messages or seconds;
    # config.RESOLVE_SNAPSHOT_RECORDS=0 turns them off (every restart replays the topic).
    snapshot_every_records: int = SnapshotPolicy.every_records
    snapshot_every_seconds: float = SnapshotPolicy.every_seconds
    role: str = "all"  # one of ROLES

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"stream role {self.role!r} is not one of {', '.join(ROLES)}")

    @property
    def ingests(self) -> bool:
        return self.role in ("all", "ingest")

    @property
    def resolves(self) -> bool:
        return self.role in ("all", "resolve")

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.topic_root)

    @property
    def group_id(self) -> str:
        return self.app_id or self.topics.stream_group

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> (
        StreamOptions
    ):
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get(config.STREAM_METRICS_PORT, "").strip():
            values["metrics_port"] = config.stream_metrics_port(None, env)
        values.update(config.resolve_settings(env).options())
        values.update(overrides)
        return cls(**values)
