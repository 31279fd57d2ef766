"""faust's topic creation asks the brokers in turn and waits out a node that is away
(streams/topic_creation.py); a stand-in for aiokafka's client, no broker."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka.errors import NodeNotReadyError, TopicAuthorizationFailedError

import streams.topic_creation as topic_creation
from streams.topic_creation import ResilientTopicCreation


class _Owner:
    async def wait(self, coroutine: Any, timeout: float) -> Any:
        return SimpleNamespace(stopped=False, result=await coroutine)


class _Client:
    """Brokers 3, 1, 2 in its metadata; ``away`` do not answer."""

    def __init__(self, away: set[int]) -> None:
        self.away = away
        self.asked: list[int] = []
        self.metadata_updates = 0
        self.cluster = SimpleNamespace(
            brokers=lambda: [SimpleNamespace(nodeId=n) for n in (3, 1, 2)],
            topics=lambda: set(),
        )

    async def send(self, node_id: int, request: Any) -> Any:
        self.asked.append(node_id)
        if node_id in self.away:
            raise NodeNotReadyError(f"node {node_id} is not ready")
        return SimpleNamespace(controller_id=1)

    async def force_metadata_update(self) -> bool:
        self.metadata_updates += 1
        return True


def _transport() -> ResilientTopicCreation:
    app = faust.App("test-topic-creation", broker="kafka://127.0.0.1:1")
    return ResilientTopicCreation(app.conf.broker_consumer, app)


def test_the_controller_is_asked_of_the_next_broker_when_the_first_is_away() -> None:
    client = _Client(away={3})
    assert asyncio.run(_transport()._get_controller_node(_Owner(), client)) == 1
    assert client.asked == [3, 1]


def test_no_broker_answering_is_an_error_naming_the_node() -> None:
    with pytest.raises(NodeNotReadyError, match="node 2"):
        asyncio.run(_transport()._get_controller_node(_Owner(), _Client(away={1, 2, 3})))


def test_a_creation_that_met_a_node_away_is_tried_again_with_fresh_metadata(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    async def flaky(self: Any, owner: Any, client: Any, topic: str, *args: Any,
                    **kwargs: Any) -> None:
        calls.append(topic)
        if len(calls) < 3:
            raise NodeNotReadyError("node 3 is not ready")

    monkeypatch.setattr(topic_creation.faust_aiokafka.Transport, "_create_topic", flaky)
    monkeypatch.setattr(topic_creation, "RETRY_SECONDS", 0.0)
    client = _Client(away=set())
    asyncio.run(_transport()._create_topic(_Owner(), client, "t", 1, 1))
    assert calls == ["t", "t", "t"] and client.metadata_updates == 2


def test_other_refusals_fail_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refused(self: Any, *args: Any, **kwargs: Any) -> None:
        raise TopicAuthorizationFailedError("not allowed")

    monkeypatch.setattr(topic_creation.faust_aiokafka.Transport, "_create_topic", refused)
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_transport()._create_topic(_Owner(), _Client(away=set()), "t", 1, 1))


def test_patience_has_an_end(monkeypatch: pytest.MonkeyPatch) -> None:
    async def away(self: Any, *args: Any, **kwargs: Any) -> None:
        raise NodeNotReadyError("node 3 is not ready")

    monkeypatch.setattr(topic_creation.faust_aiokafka.Transport, "_create_topic", away)
    monkeypatch.setattr(topic_creation, "RETRY_SECONDS", 0.0)
    monkeypatch.setattr(topic_creation, "CREATE_PATIENCE_SECONDS", 0.0)
    with pytest.raises(NodeNotReadyError):
        asyncio.run(_transport()._create_topic(_Owner(), _Client(away=set()), "t", 1, 1))
