"""One look at the pipeline's consumer groups: which groups, their offsets, their lag.

Glue between :mod:`deploy.operations.offsets` (I/O) and :mod:`deploy.operations.lag` (pure):
take samples, keep the window, judge it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.operations.history import (
    History,
    append_samples,
    history_path,
    load_history,
    prune_history,
    save_history,
)
from deploy.operations.lag import GroupLag, PartitionSample, Thresholds, evaluate_group
from deploy.operations.offsets import (
    KAFKA,
    POSTGRESQL,
    GroupOffsets,
    OffsetReader,
    Partition,
    pipeline_group_names,
)
from schemas.config import Settings

HISTORY_MAX_AGE_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Sample:
    observed_at: float
    groups: tuple[GroupOffsets, ...]
    partitions: dict[str, dict[Partition, PartitionSample]]  # group -> partition -> sample
    log_start_offsets: dict[Partition, int]
    warnings: tuple[str, ...]


class LagSurvey:
    """Samples the chosen groups (``groups``), or every pipeline group when none is chosen
    (optionally only those whose name starts with ``prefix``)."""

    def __init__(
        self, reader: OffsetReader, groups: Sequence[str] = (), prefix: str = ""
    ) -> None:
        self.reader = reader
        self.chosen = list(dict.fromkeys(groups))
        self.prefix = prefix
        self._topic_partitions: dict[str, list[int]] = {}

    def _group_offsets(self) -> tuple[list[GroupOffsets], list[str]]:
        warnings: list[str] = []
        sink_commits, warning = self.reader.sink_commits()
        if warning:
            warnings.append(warning)
        kafka_names = set(self.reader.kafka_group_names())
        if self.chosen:
            names = self.chosen
            kafka_commits = self.reader.kafka_commits(
                name for name in names if name in kafka_names and name not in sink_commits
            )
        else:
            kafka_commits = self.reader.kafka_commits(sorted(kafka_names))
            names = pipeline_group_names(kafka_commits, sink_commits, self.prefix)
        described = self.reader.describe(name for name in names if name in kafka_names)
        groups = []
        for name in names:
            state, members, assigned = described.get(
                name, ("NOT_FOUND" if name not in sink_commits else "UNKNOWN", 0, frozenset())
            )
            if name in sink_commits:
                committed, offsets_from = sink_commits[name], POSTGRESQL
            else:
                committed, offsets_from = kafka_commits.get(name, {}), KAFKA
            groups.append(
                GroupOffsets(
                    group=name, offsets_from=offsets_from, state=state, members=members,
                    committed=committed, assigned=assigned,
                )
            )
        return groups, warnings

    def _all_partitions(self, group: GroupOffsets) -> set[Partition]:
        """Committed and assigned partitions, and every other partition of the same topics
        (so a partition the group never committed on shows up as such)."""
        topics = {topic for topic, _ in group.partitions}
        unknown = topics - set(self._topic_partitions)
        if unknown:
            self._topic_partitions.update(self.reader.topic_partitions(unknown))
        return group.partitions | {
            (topic, partition)
            for topic in topics
            for partition in self._topic_partitions.get(topic, [])
        }

    def sample(self) -> Sample:
        # Commits are read before end offsets, as Kafka's own tool does: an end offset read
        # later can only be higher, so a lag is never negative.
        groups, warnings = self._group_offsets()
        wanted = {group.group: self._all_partitions(group) for group in groups}
        every = set().union(*wanted.values()) if wanted else set()
        end_offsets = self.reader.end_offsets(every)
        uncommitted = {
            key for group in groups for key in wanted[group.group] if key not in group.committed
        }
        log_starts = self.reader.log_start_offsets(uncommitted & set(end_offsets))
        observed_at = time.time()
        partitions = {
            group.group: {
                key: PartitionSample(
                    observed_at=observed_at,
                    end_offset=end_offsets[key],
                    committed_offset=group.committed.get(key),
                )
                for key in sorted(wanted[group.group])
                if key in end_offsets
            }
            for group in groups
        }
        return Sample(observed_at, tuple(groups), partitions, log_starts, tuple(warnings))

    def judge(
        self,
        sample: Sample,
        history: History,
        thresholds: Thresholds,
    ) -> tuple[list[GroupLag], History]:
        """Append ``sample`` to the history and judge each group over its window."""
        for group in sample.groups:
            history = append_samples(
                history, group.group, sample.partitions[group.group], thresholds.window_samples
            )
        reports = []
        for group in sample.groups:
            positions = {
                key: current.committed_offset or 0
                for key, current in sample.partitions[group.group].items()
                if current.lag
            }
            timestamps = self.reader.record_timestamps(positions)
            windows = {
                key: history[group.group][key] for key in sample.partitions[group.group]
            }
            reports.append(
                evaluate_group(
                    group=group.group,
                    offsets_from=group.offsets_from,
                    state=group.state,
                    members=group.members,
                    windows=windows,
                    log_start_offsets=sample.log_start_offsets,
                    record_timestamps=timestamps,
                    now=time.time(),
                    thresholds=thresholds,
                )
            )
        return reports, history


def survey_lag(
    settings: Settings,
    *,
    groups: Sequence[str] = (),
    prefix: str = "",
    samples: int = 2,
    interval: float = 1.0,
    thresholds: Thresholds | None = None,
    history_file: Path | None = None,
) -> tuple[list[GroupLag], list[str]]:
    """Sample ``samples`` times, ``interval`` seconds apart, keep the samples in the history
    file and judge every group over its window. Returns the groups and warnings to show."""
    thresholds = thresholds or Thresholds()
    path = history_file or history_path(settings.home)
    history, warning = load_history(path)
    warnings = [warning] if warning else []
    history = prune_history(history, now=time.time(), max_age_seconds=HISTORY_MAX_AGE_SECONDS)
    reader = OffsetReader(settings)
    survey = LagSurvey(reader, groups, prefix)
    reports: list[GroupLag] = []
    for index in range(samples):
        if index:
            time.sleep(interval)
        sample = survey.sample()
        warnings.extend(warning for warning in sample.warnings if warning not in warnings)
        # Only the last sample is judged (and its timestamps read); earlier ones feed the window.
        if index < samples - 1:
            for group in sample.groups:
                history = append_samples(
                    history, group.group, sample.partitions[group.group],
                    thresholds.window_samples,
                )
            continue
        reports, history = survey.judge(sample, history, thresholds)
    save_history(path, history)
    return reports, warnings
