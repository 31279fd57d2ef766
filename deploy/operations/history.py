"""The window of lag samples kept between invocations of ``tipsync lag``.

Burrow's statuses need history, and an operator runs ``tipsync lag`` now and then rather
than keeping a daemon: so every invocation appends what it saw to
``<state folder>/operations/lag-history.json`` and judges over the last samples of each
partition. The file holds offsets and times only (no record content), is rewritten
atomically, and a damaged file is set aside rather than stopping the command.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from deploy.operations.lag import PartitionSample

HISTORY_VERSION = 1

# group -> (topic, partition) -> samples, oldest first
History = dict[str, dict[tuple[str, int], list[PartitionSample]]]


def history_path(home: Path) -> Path:
    return home / "operations" / "lag-history.json"


def append_samples(
    history: History,
    group: str,
    samples: Mapping[tuple[str, int], PartitionSample],
    keep: int,
) -> History:
    """A new history with ``samples`` appended to ``group``'s partitions, ``keep`` per
    partition at most (the oldest are dropped)."""
    updated = {name: dict(partitions) for name, partitions in history.items()}
    partitions = updated.setdefault(group, {})
    for key, sample in samples.items():
        partitions[key] = [*partitions.get(key, []), sample][-keep:]
    return updated


def prune_history(history: History, *, now: float, max_age_seconds: float) -> History:
    """Drop partitions (and groups) not seen for ``max_age_seconds``: throwaway test groups
    and deleted topics would otherwise make the file grow for ever."""
    pruned: History = {}
    for group, partitions in history.items():
        kept = {
            key: samples for key, samples in partitions.items()
            if samples and now - samples[-1].observed_at <= max_age_seconds
        }
        if kept:
            pruned[group] = kept
    return pruned


def history_to_json(history: History) -> dict[str, object]:
    return {
        "version": HISTORY_VERSION,
        "groups": {
            group: [
                {
                    "topic": topic,
                    "partition": partition,
                    "samples": [
                        [sample.observed_at, sample.end_offset, sample.committed_offset]
                        for sample in samples
                    ],
                }
                for (topic, partition), samples in sorted(partitions.items())
            ]
            for group, partitions in sorted(history.items())
        },
    }


def history_from_json(document: object) -> History:
    """Parse the file's content; raises ValueError naming what is wrong."""
    if not isinstance(document, dict) or document.get("version") != HISTORY_VERSION:
        raise ValueError(f"it is not a version {HISTORY_VERSION} lag history")
    history: History = {}
    for group, partitions in dict(document.get("groups") or {}).items():
        history[group] = {
            (entry["topic"], int(entry["partition"])): [
                PartitionSample(
                    observed_at=float(observed_at),
                    end_offset=int(end_offset),
                    committed_offset=None if committed is None else int(committed),
                )
                for observed_at, end_offset, committed in entry["samples"]
            ]
            for entry in partitions
        }
    return history


def load_history(path: Path) -> tuple[History, str | None]:
    """The stored history and, when the file could not be used, a warning saying why."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, None
    try:
        return history_from_json(json.loads(text)), None
    except (ValueError, KeyError, TypeError) as error:
        aside = path.with_suffix(".damaged.json")
        path.replace(aside)
        return {}, (
            f"{path}: the lag history could not be read ({error}); it was moved to {aside}"
            " and a new one is started, so statuses that need a window start from scratch"
        )


def save_history(path: Path, history: History) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".lag-history-", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump(history_to_json(history), stream)
    os.replace(temporary, path)
