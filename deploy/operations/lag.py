"""Consumer lag and its status, in the spirit of LinkedIn's Burrow: pure functions over samples.

A *sample* is what the operator's tool saw of one partition at one moment: the end offset
(high watermark), the group's committed offset (None: the group never committed there) and
when it looked. Lag in messages alone says little: 10 000 messages behind is fine for a
consumer racing through a backlog and alarming for one that has not moved in an hour. So,
like Burrow, the status is judged over a window of samples of the same partition, and the
rules below are checked in this order (the first that applies wins):

==========  ===============================================================================
NO_COMMIT   the group has no committed offset for the partition; lag is not a number then
            (``pending`` says how many messages the partition holds instead).
OK          the lag is 0 now: caught up, even when idle for days.
REWIND      the committed offset went backwards between two samples of the window (an
            offset reset, or a consumer restarted from an old checkpoint).
STOP        lag > 0, the committed offset did not move over the window, and either the
            group has no active member (nobody is consuming) or the offset has not moved for
            ``stop_after_seconds`` (much longer than any consumer of ours takes between
            commits: faust commits every 2.8 s, the sink with every batch).
OK          the lag was 0 at some sample of the window: the consumer keeps catching up.
STALL       lag > 0, a member is connected, but the committed offset has not moved for at
            least ``stall_after_seconds`` (it is alive and stuck).
WARN        the committed offset moves, but over at least ``trend_samples`` samples the lag
            never went down and ended higher than it started: the consumer falls behind.
OK          otherwise: lag > 0 and the consumer is making progress.
==========  ===============================================================================

"How long has the committed offset not moved" can only be seen from samples: it is the time
since the oldest sample of the window that already held today's committed offset, a lower
bound of the truth. One sample therefore never makes a STALL; STOP on one sample needs the
group to have no member at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    OK = "OK"
    NO_COMMIT = "NO_COMMIT"
    WARN = "WARN"
    REWIND = "REWIND"
    STALL = "STALL"
    STOP = "STOP"


# A group is as bad as its worst partition; this is the order of "bad".
SEVERITY: dict[Status, int] = {
    Status.OK: 0,
    Status.NO_COMMIT: 1,
    Status.WARN: 2,
    Status.REWIND: 3,
    Status.STALL: 4,
    Status.STOP: 5,
}


@dataclass(frozen=True)
class Thresholds:
    """How the statuses are judged; the defaults suit tipsync's own consumers."""

    stall_after_seconds: float = 30.0
    stop_after_seconds: float = 300.0
    trend_samples: int = 3
    window_samples: int = 10


@dataclass(frozen=True)
class PartitionSample:
    observed_at: float  # seconds since the epoch
    end_offset: int
    committed_offset: int | None

    @property
    def lag(self) -> int | None:
        if self.committed_offset is None:
            return None
        return max(self.end_offset - self.committed_offset, 0)


@dataclass(frozen=True)
class Verdict:
    status: Status
    reason: str


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    end_offset: int
    committed_offset: int | None
    lag: int | None
    lag_seconds: float | None
    pending: int | None  # messages held by a partition the group never committed on
    status: Status
    reason: str

    def as_json(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "end_offset": self.end_offset,
            "committed_offset": self.committed_offset,
            "lag": self.lag,
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "pending": self.pending,
            "status": self.status.value,
            "reason": self.reason,
        }


# a group's states (as the admin API names them) while it rebalances
REBALANCING = frozenset({"PREPARING_REBALANCING", "COMPLETING_REBALANCING"})


@dataclass(frozen=True)
class GroupLag:
    group: str
    offsets_from: str  # "kafka" or "postgresql"
    state: str  # the group's state as Kafka reports it, or UNKNOWN
    members: int
    partitions: tuple[PartitionLag, ...] = field(default_factory=tuple)

    @property
    def status(self) -> Status:
        return group_status(partition.status for partition in self.partitions)

    @property
    def total_lag(self) -> int:
        return sum(partition.lag or 0 for partition in self.partitions)

    @property
    def max_lag_seconds(self) -> float:
        return max((partition.lag_seconds or 0.0 for partition in self.partitions), default=0.0)

    @property
    def caught_up(self) -> bool:
        """Every partition fully consumed; a never-committed one only counts when empty. Never
        while the group rebalances: Kafka then describes its members without their
        partitions, so a topic the group has not committed on yet is missing from
        ``partitions`` and would pass as consumed (CI, session 12: `--wait-zero` said caught up
        while a restarted stream worker rejoined and 334 records of such topics waited)."""
        if self.state in REBALANCING:
            return False
        return bool(self.partitions) and all(
            (partition.lag == 0) if partition.committed_offset is not None
            else not partition.pending
            for partition in self.partitions
        )

    def as_json(self) -> dict[str, object]:
        return {
            "group": self.group,
            "offsets_from": self.offsets_from,
            "state": self.state,
            "members": self.members,
            "status": self.status.value,
            "total_lag": self.total_lag,
            "max_lag_seconds": round(self.max_lag_seconds, 3),
            "caught_up": self.caught_up,
            "partitions": [partition.as_json() for partition in self.partitions],
        }


def group_status(statuses: Iterable[Status]) -> Status:
    """The worst partition status; a group without partitions has nothing committed."""
    ordered = sorted(statuses, key=SEVERITY.__getitem__)
    return ordered[-1] if ordered else Status.NO_COMMIT


def _unmoved_seconds(window: Sequence[PartitionSample], now: float) -> float:
    """Seconds since the oldest sample of the window that already had today's offset."""
    current = window[-1].committed_offset
    since = window[-1].observed_at
    for sample in reversed(window):
        if sample.committed_offset != current:
            break
        since = sample.observed_at
    return max(now - since, 0.0)


def evaluate_partition(
    window: Sequence[PartitionSample],
    *,
    now: float,
    group_has_members: bool,
    thresholds: Thresholds = Thresholds(),
) -> Verdict:
    """The status of one partition from its samples (oldest first, the last is current)."""
    if not window:
        raise ValueError("evaluate_partition needs at least the current sample of the partition")
    window = list(window)[-thresholds.window_samples:]
    current = window[-1]
    if current.committed_offset is None:
        return Verdict(Status.NO_COMMIT, "the group has not committed an offset here yet")
    lag = current.lag or 0
    if lag == 0:
        return Verdict(Status.OK, "caught up")
    # Samples from before the group's first commit say nothing about its progress.
    committed = [sample for sample in window if sample.committed_offset is not None]
    offsets = [sample.committed_offset or 0 for sample in committed]
    for earlier, later in zip(offsets, offsets[1:], strict=False):
        if later < earlier:
            return Verdict(
                Status.REWIND, f"the committed offset went back from {earlier} to {later}"
            )
    unmoved = _unmoved_seconds(committed, now)
    moved_in_window = len(set(offsets)) > 1
    if not moved_in_window:
        if not group_has_members:
            return Verdict(
                Status.STOP, f"{lag} messages behind and no member of the group is consuming"
            )
        if unmoved >= thresholds.stop_after_seconds:
            return Verdict(
                Status.STOP,
                f"{lag} messages behind and the committed offset has not moved for"
                f" {unmoved:.0f} s (limit {thresholds.stop_after_seconds:.0f} s)",
            )
    if any(sample.lag == 0 for sample in committed):
        return Verdict(Status.OK, "behind now, but caught up within the window")
    if not moved_in_window and unmoved >= thresholds.stall_after_seconds:
        return Verdict(
            Status.STALL,
            f"{lag} messages behind and the committed offset has not moved for {unmoved:.0f} s"
            " while a member is connected",
        )
    lags = [sample.lag or 0 for sample in committed]
    if (
        moved_in_window
        and len(lags) >= thresholds.trend_samples
        and all(later >= earlier for earlier, later in zip(lags, lags[1:], strict=False))
        and lags[-1] > lags[0]
    ):
        return Verdict(
            Status.WARN, f"lag grew from {lags[0]} to {lags[-1]} over {len(lags)} samples"
        )
    return Verdict(Status.OK, "consuming")


def evaluate_group(
    *,
    group: str,
    offsets_from: str,
    state: str,
    members: int,
    windows: Mapping[tuple[str, int], Sequence[PartitionSample]],
    log_start_offsets: Mapping[tuple[str, int], int],
    record_timestamps: Mapping[tuple[str, int], float],
    now: float,
    thresholds: Thresholds = Thresholds(),
) -> GroupLag:
    """One group's report. ``record_timestamps`` holds, for partitions with lag, the time of
    the record at the committed offset (the oldest message not yet consumed)."""
    partitions = []
    for (topic, partition), window in sorted(windows.items()):
        verdict = evaluate_partition(
            window, now=now, group_has_members=members > 0, thresholds=thresholds
        )
        current = window[-1]
        lag = current.lag
        lag_seconds: float | None = None
        if lag == 0:
            lag_seconds = 0.0
        elif lag is not None and (topic, partition) in record_timestamps:
            lag_seconds = max(now - record_timestamps[(topic, partition)], 0.0)
        pending = None
        if current.committed_offset is None:
            start = log_start_offsets.get((topic, partition), 0)
            pending = max(current.end_offset - start, 0)
        partitions.append(
            PartitionLag(
                topic=topic,
                partition=partition,
                end_offset=current.end_offset,
                committed_offset=current.committed_offset,
                lag=lag,
                lag_seconds=lag_seconds,
                pending=pending,
                status=verdict.status,
                reason=verdict.reason,
            )
        )
    return GroupLag(
        group=group, offsets_from=offsets_from, state=state, members=members,
        partitions=tuple(partitions),
    )


def failing(groups: Iterable[GroupLag], fail_on: Status) -> list[GroupLag]:
    """The groups whose status is ``fail_on`` or worse (``SEVERITY``): what ``tipsync lag
    --fail-on`` exits 1 for (``--fail-on STALL`` catches STALL and STOP)."""
    return [group for group in groups if SEVERITY[group.status] >= SEVERITY[fail_on]]


def still_behind(groups: Sequence[GroupLag]) -> list[str]:
    """One line per group that has not caught up, for ``--wait-zero``'s timeout message."""
    lines = []
    for group in groups:
        if group.caught_up:
            continue
        behind = [
            f"{partition.topic}[{partition.partition}] "
            + (f"lag {partition.lag}" if partition.committed_offset is not None
               else f"no commit, {partition.pending} pending")
            for partition in group.partitions
            if (partition.lag or partition.pending)
        ]
        detail = ", ".join(behind[:5]) + (f" and {len(behind) - 5} more" if len(behind) > 5 else "")
        lines.append(
            f"{group.group}: {group.status.value}, {group.total_lag} messages behind"
            + (f" ({detail})" if detail else "" if group.state in REBALANCING
               else " (no partitions known yet)")
            + (f"; the group is rebalancing ({group.state})" if group.state in REBALANCING
               else "")
        )
    return lines
