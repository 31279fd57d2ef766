"""What a running tipsync process is built from: the labels of ``tipsync_build_info``.

Every process that serves metrics (stream, sink, monitor) exports the gauge
``tipsync_build_info{process, version, commit, python, confluent_kafka, librdkafka, faust} 1``
so a dashboard shows which release runs where, and an alert or a post-mortem can tell a
rollout from a fault. Versions and a commit id only: nothing personal, nothing secret.
"""

from __future__ import annotations

import platform
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

METRIC: Final = "tipsync_build_info"
LABELS: Final = ("process", "version", "commit", "python", "confluent_kafka", "librdkafka",
                 "faust")
UNKNOWN: Final = "unknown"


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return UNKNOWN


def _commit() -> str:
    """The checkout's commit when the code runs from a git checkout (short id), else
    ``unknown`` (an installed package or an image without .git)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return UNKNOWN
    try:
        found = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return found.stdout.strip() if found.returncode == 0 and found.stdout.strip() else UNKNOWN


@cache
def build_labels() -> tuple[str, ...]:
    """The values of ``LABELS`` after ``process``, read once per process."""
    import confluent_kafka

    return (_version("tipsync"), _commit(), platform.python_version(),
            confluent_kafka.version()[0], confluent_kafka.libversion()[0],
            _version("faust-streaming"))


def build_info(process: str) -> dict[str, str]:
    """Label -> value of this process's ``tipsync_build_info`` series."""
    return dict(zip(LABELS, (process, *build_labels()), strict=True))


def export_build_info(registry: CollectorRegistry, process: str) -> None:
    """Add ``tipsync_build_info`` (value 1) for ``process`` to a metrics registry."""
    from prometheus_client import Gauge

    info = build_info(process)
    Gauge(METRIC, "What this process is built from (value 1).", LABELS,
          registry=registry).labels(**info).set(1)
