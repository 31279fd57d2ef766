"""Burrow-style statuses over windows of samples (pure: no Kafka)."""

from __future__ import annotations

import pytest

from deploy.operations.lag import (
    GroupLag,
    PartitionSample,
    Status,
    Thresholds,
    evaluate_group,
    evaluate_partition,
    group_status,
    still_behind,
)

THRESHOLDS = Thresholds(stall_after_seconds=30, stop_after_seconds=300, trend_samples=3)


def window(*points: tuple[float, int, int | None]) -> list[PartitionSample]:
    return [PartitionSample(at, end, committed) for at, end, committed in points]


def judge(samples: list[PartitionSample], members: bool = True, now: float | None = None):
    return evaluate_partition(
        samples,
        now=samples[-1].observed_at if now is None else now,
        group_has_members=members,
        thresholds=THRESHOLDS,
    )


def test_idle_partition_with_zero_lag_is_ok_even_without_members_or_movement():
    samples = window((0, 50, 50), (600, 50, 50), (1200, 50, 50))
    assert judge(samples, members=False).status is Status.OK


def test_partition_never_committed_says_so_instead_of_a_lag():
    samples = window((0, 1_000_000, None))
    verdict = judge(samples)
    assert verdict.status is Status.NO_COMMIT
    assert samples[-1].lag is None


def test_committed_offset_going_back_is_rewind():
    samples = window((0, 100, 80), (10, 100, 20), (20, 110, 25))
    verdict = judge(samples)
    assert verdict.status is Status.REWIND
    assert "80 to 20" in verdict.reason


def test_behind_with_no_member_and_no_movement_is_stop():
    samples = window((0, 100, 90), (1, 105, 90))
    assert judge(samples, members=False).status is Status.STOP


def test_behind_with_no_member_on_a_single_sample_is_stop():
    assert judge(window((0, 100, 90)), members=False).status is Status.STOP


def test_behind_without_movement_longer_than_stop_after_is_stop_even_with_members():
    samples = window((0, 100, 90), (200, 110, 90), (400, 120, 90))
    assert judge(samples, members=True).status is Status.STOP


def test_connected_but_not_moving_past_stall_after_is_stall():
    samples = window((0, 100, 90), (20, 110, 90), (40, 120, 90))
    verdict = judge(samples, members=True)
    assert verdict.status is Status.STALL
    assert "40 s" in verdict.reason


def test_connected_and_not_moving_for_less_than_stall_after_is_still_ok():
    samples = window((0, 100, 90), (10, 110, 90))
    assert judge(samples, members=True).status is Status.OK


def test_consumer_moving_while_lag_keeps_growing_is_warn():
    samples = window((0, 100, 90), (10, 130, 100), (20, 170, 110))
    verdict = judge(samples)
    assert verdict.status is Status.WARN
    assert "10 to 60" in verdict.reason


def test_growing_lag_needs_trend_samples_before_warn():
    samples = window((0, 100, 90), (10, 130, 100))
    assert judge(samples).status is Status.OK


def test_consumer_catching_up_is_ok():
    samples = window((0, 200, 100), (10, 210, 150), (20, 220, 200))
    assert judge(samples).status is Status.OK


def test_lag_zero_within_the_window_is_ok_when_the_consumer_is_connected():
    samples = window((0, 100, 100), (10, 120, 100), (50, 130, 100))
    assert judge(samples, members=True).status is Status.OK


def test_lag_zero_earlier_does_not_hide_a_consumer_that_went_away():
    samples = window((0, 100, 100), (10, 120, 100))
    assert judge(samples, members=False).status is Status.STOP


def test_samples_before_the_first_commit_do_not_count_as_a_rewind():
    samples = window((0, 100, None), (10, 100, 40), (20, 100, 70))
    assert judge(samples).status is Status.OK


def test_only_the_last_window_samples_are_judged():
    # An old rewind falls out of a window of 3.
    samples = window((0, 100, 90), (1, 100, 10), (2, 100, 20), (3, 100, 30), (4, 100, 40))
    verdict = evaluate_partition(
        samples, now=4, group_has_members=True,
        thresholds=Thresholds(window_samples=3, trend_samples=3),
    )
    assert verdict.status is Status.OK


def test_an_empty_window_is_a_programming_error_with_a_clear_message():
    with pytest.raises(ValueError, match="at least the current sample"):
        evaluate_partition([], now=0, group_has_members=True)


def test_group_status_is_the_worst_partition_status():
    assert group_status([Status.OK, Status.WARN, Status.OK]) is Status.WARN
    assert group_status([Status.STALL, Status.STOP, Status.REWIND]) is Status.STOP
    assert group_status([Status.OK, Status.NO_COMMIT]) is Status.NO_COMMIT
    assert group_status([]) is Status.NO_COMMIT


def test_group_report_computes_lag_seconds_from_the_oldest_unconsumed_record():
    report = evaluate_group(
        group="tipsync-sink",
        offsets_from="postgresql",
        state="STABLE",
        members=1,
        windows={
            ("tip.reconciled.person", 0): window((100, 50, 40)),
            ("tip.reconciled.person", 1): window((100, 30, 30)),
            ("tip.reconciled.person", 2): window((100, 12, None)),
        },
        log_start_offsets={("tip.reconciled.person", 2): 2},
        record_timestamps={("tip.reconciled.person", 0): 88.0},
        now=100.0,
        thresholds=THRESHOLDS,
    )
    first, second, third = report.partitions
    assert (first.lag, first.lag_seconds) == (10, 12.0)
    assert (second.lag, second.lag_seconds) == (0, 0.0)
    assert (third.lag, third.pending, third.status) == (None, 10, Status.NO_COMMIT)
    assert report.total_lag == 10
    assert report.max_lag_seconds == 12.0
    assert not report.caught_up
    assert report.as_json()["status"] == "NO_COMMIT"


def test_caught_up_needs_every_partition_at_zero_and_empty_uncommitted_ones():
    report = evaluate_group(
        group="g", offsets_from="kafka", state="EMPTY", members=0,
        windows={("t", 0): window((1, 5, 5)), ("t", 1): window((1, 3, None))},
        log_start_offsets={("t", 1): 3},
        record_timestamps={},
        now=1,
    )
    assert report.caught_up
    assert still_behind([report]) == []


def test_a_group_with_no_partitions_is_not_caught_up_and_says_why():
    empty = GroupLag(group="tipsync-streams", offsets_from="kafka", state="NOT_FOUND",
                     members=0)
    assert not empty.caught_up
    assert still_behind([empty]) == [
        "tipsync-streams: NO_COMMIT, 0 messages behind (no partitions known yet)"
    ]


def test_still_behind_names_partitions_and_their_lag():
    report = evaluate_group(
        group="g", offsets_from="kafka", state="STABLE", members=1,
        windows={("t", 0): window((1, 9, 4)), ("t", 1): window((1, 6, None))},
        log_start_offsets={}, record_timestamps={}, now=1,
    )
    assert still_behind([report]) == [
        "g: NO_COMMIT, 5 messages behind (t[0] lag 5, t[1] no commit, 6 pending)"
    ]


def test_a_rebalancing_group_is_never_caught_up():
    # Kafka describes a rebalancing group's members without their partitions: a topic the
    # group never committed on is then missing, and would pass as consumed (CI, session 12)
    for state in ("PREPARING_REBALANCING", "COMPLETING_REBALANCING"):
        report = evaluate_group(
            group="g", offsets_from="kafka", state=state, members=1,
            windows={("t", 0): window((1, 5, 5))}, log_start_offsets={},
            record_timestamps={}, now=1,
        )
        assert not report.caught_up
        assert still_behind([report]) == [
            f"g: OK, 0 messages behind; the group is rebalancing ({state})"]
