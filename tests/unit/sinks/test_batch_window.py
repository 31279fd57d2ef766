"""When the sink's batch closes early: every owned partition read to its known end."""

from sinks.window import UNKNOWN, caught_up


def test_every_partition_at_its_high_watermark_is_caught_up() -> None:
    assert caught_up({("t", 0): 10, ("t", 1): 0}, {("t", 0): 10, ("t", 1): 0})


def test_one_partition_with_more_to_read_is_behind() -> None:
    assert not caught_up({("t", 0): 10, ("t", 1): 3}, {("t", 0): 10, ("t", 1): 4})


def test_a_partition_whose_end_is_not_known_yet_is_behind() -> None:
    assert not caught_up({("t", 0): 10}, {("t", 0): UNKNOWN})
    assert not caught_up({("t", 0): 10}, {})


def test_a_partition_without_a_known_position_is_behind() -> None:
    assert not caught_up({("t", 0): UNKNOWN}, {("t", 0): 5})


def test_owning_nothing_is_caught_up() -> None:
    assert caught_up({}, {})
