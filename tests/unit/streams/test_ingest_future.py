"""Ingest refuses events from the implausible future (streams.ingest.check_plausible): a
forged source_version or event_time must not freeze another record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.dead_letters import Rejected
from schemas.examples import example_event
from streams.ingest import FUTURE_TOLERANCE_MS, Verdict, check_event, check_plausible, judge

POLICE = "police-ctu"
NOW = datetime(2025, 3, 1, 12, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
LONG_MAX = 2**63 - 1


def _checked(**envelope: object) -> object:
    event = example_event("case", POLICE, "C-1", **envelope)
    return check_event(POLICE, "case", b"police-ctu:C-1", event, now_ms=NOW_MS)


@pytest.mark.parametrize("version", [0, 1, 42, NOW_MS, NOW_MS + FUTURE_TOLERANCE_MS])
def test_counters_and_updated_at_milliseconds_up_to_a_day_ahead_pass(version: int) -> None:
    check_plausible("case", POLICE, version, NOW, NOW_MS)


@pytest.mark.parametrize("version", [NOW_MS + FUTURE_TOLERANCE_MS + 1, 10**15, LONG_MAX])
def test_a_version_beyond_now_plus_a_day_is_refused(version: int) -> None:
    with pytest.raises(Rejected) as refused:
        check_plausible("case", POLICE, version, NOW, NOW_MS)
    letter = refused.value.dead_letter
    assert letter.reason == "future_version"
    assert "police-ctu" in letter.detail and str(version) not in letter.detail


def test_an_event_time_more_than_a_day_ahead_is_refused() -> None:
    check_plausible("case", POLICE, 1, NOW + timedelta(hours=23), NOW_MS)
    check_plausible("case", POLICE, 1, NOW_MS + FUTURE_TOLERANCE_MS, NOW_MS)  # millis too
    with pytest.raises(Rejected) as refused:
        check_plausible("case", POLICE, 1, NOW + timedelta(days=1, seconds=1), NOW_MS)
    assert refused.value.dead_letter.reason == "future_event_time"


def test_check_event_applies_the_rule_with_the_clock_given() -> None:
    with pytest.raises(Rejected) as refused:
        _checked(source_version=LONG_MAX, event_time=NOW)
    assert refused.value.dead_letter.reason == "future_version"
    with pytest.raises(Rejected) as refused:
        _checked(source_version=2, event_time=NOW + timedelta(days=3))
    assert refused.value.dead_letter.reason == "future_event_time"
    assert _checked(source_version=2, event_time=NOW).source_version == 2  # type: ignore[attr-defined]


def test_without_the_rule_a_forged_version_would_freeze_the_record() -> None:
    """Why the rule exists: once LONG_MAX is held, every genuine change is stale."""
    from streams.ingest import remember

    frozen = remember(None, "forged", LONG_MAX)
    assert judge(frozen, "genuine", NOW_MS) is Verdict.STALE
    # refused at the gate, nothing is held, and the genuine change is accepted
    assert judge(None, "genuine", NOW_MS) is Verdict.ACCEPT
