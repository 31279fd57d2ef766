"""The members' assignments ``tipsync lag`` reads from Kafka's group listing
(``deploy.operations.offsets.assigned_partitions``): the consumer protocol's bytes, as the
clients of the pipeline encode them (aiokafka for the stream workers, under faust's own
assignor; librdkafka for the sink), decoded without a broker."""

from __future__ import annotations

from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from deploy.operations.offsets import GROUP_STATES, assigned_partitions


def test_an_aiokafka_assignment_is_read_back_with_its_user_data_left_alone():
    encoded = ConsumerProtocolMemberAssignment(
        0, [("tip.agency.customs.person", [0, 3]), ("tip.internal.resolve", [0])],
        b'{"faust": "its own assignor data"}',
    ).encode()
    assert sorted(assigned_partitions(encoded)) == [
        ("tip.agency.customs.person", 0), ("tip.agency.customs.person", 3),
        ("tip.internal.resolve", 0),
    ]


def test_a_later_protocol_version_and_an_empty_assignment():
    encoded = ConsumerProtocolMemberAssignment(3, [("tip.reconciled.case", [5])], b"").encode()
    assert assigned_partitions(encoded) == [("tip.reconciled.case", 5)]
    assert assigned_partitions(ConsumerProtocolMemberAssignment(0, [], b"").encode()) == []


def test_bytes_that_are_no_assignment_give_none():
    assert assigned_partitions(None) == []
    assert assigned_partitions(b"") == []
    assert assigned_partitions(b"\x00\x00\x00\x00\x00\x01\x00\x09tip") == []  # cut short


def test_states_are_named_as_the_admin_api_names_them():
    assert GROUP_STATES["Stable"] == "STABLE"
    assert GROUP_STATES["PreparingRebalance"] == "PREPARING_REBALANCING"
    assert set(GROUP_STATES.values()) == {
        "STABLE", "PREPARING_REBALANCING", "COMPLETING_REBALANCING", "EMPTY", "DEAD"}
