"""``tipsync bench faults``'s schedule: the kills and the broker / PostgreSQL restarts, seeded."""

from __future__ import annotations

import random

from deploy.bench.faults import SERVICES, schedule


def test_the_schedule_holds_every_kill_and_as_many_restarts_of_each_and_repeats_with_its_seed(
) -> None:
    events = schedule(random.Random(13), kills=8, restarts=4)
    assert events.count("kill") == 8
    assert [events.count(service) for service in SERVICES] == [2, 2]
    assert schedule(random.Random(13), kills=8, restarts=4) == events
    odd = schedule(random.Random(5), kills=3, restarts=3)
    assert sorted(odd.count(service) for service in SERVICES) == [1, 2]


def test_no_restarts_leaves_only_kills() -> None:
    assert schedule(random.Random(1), kills=4, restarts=0) == ["kill"] * 4
