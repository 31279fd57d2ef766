"""faust's topic creation, made to survive a Kafka node that is down.

faust-streaming 0.15.3 creates a topic it declares (changelogs, the resolve topic, outputs)
by asking *the first broker of its metadata* which node is the controller and sending the
CreateTopics request there (``faust.transport.drivers.aiokafka.Transport._get_controller_node``
returns after that one broker). When that broker is down, aiokafka raises
``NodeNotReadyError`` and the worker crashes at start. Seen in `make faults` (session 6): the
stream worker, restarted just before a broker of the three-node cluster was killed, exited
with code 1 and its input waited for a supervisor.

``ResilientTopicCreation`` asks each broker in turn until one answers, and retries a creation
that met a node going away, with fresh metadata, for up to ``CREATE_PATIENCE_SECONDS`` (a
dead broker leaves the metadata once the controller fences it: 9 s by default). Anything
else (a refused ACL, a bad config) fails as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka.errors import KafkaConnectionError, NodeNotReadyError, RequestTimedOutError
from aiokafka.protocol.metadata import MetadataRequest
from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger("tipsync.streams")

# Errors that say a node is away, not that the request is wrong.
NODE_AWAY = (NodeNotReadyError, KafkaConnectionError, RequestTimedOutError)
CREATE_PATIENCE_SECONDS = 60.0
RETRY_SECONDS = 1.0


class ResilientTopicCreation(faust_aiokafka.Transport):  # type: ignore[misc]
    """faust's aiokafka transport; only topic creation differs (module docstring).
    ``StreamApp`` puts it in place of the app's transport class before anything is made."""

    async def _get_controller_node(
        self, owner: Any, client: Any, timeout: int = 30000
    ) -> int | None:
        away: Exception | None = None
        for node_id in [broker.nodeId for broker in client.cluster.brokers()]:
            try:
                answer = await owner.wait(client.send(node_id, MetadataRequest([])),
                                          timeout=timeout)
            except NODE_AWAY as error:
                away = error  # ask the next broker
                continue
            if answer.stopped:
                return None
            return int(answer.result.controller_id)
        raise away or NodeNotReadyError("no Kafka broker in the metadata answered")

    async def _create_topic(self, owner: Any, client: Any, topic: str, partitions: int,
                            replication: int, **kwargs: Any) -> None:
        deadline = time.monotonic() + CREATE_PATIENCE_SECONDS
        while True:
            try:
                await super()._create_topic(owner, client, topic, partitions, replication,
                                            **kwargs)
                return
            except NODE_AWAY as error:
                if time.monotonic() >= deadline:
                    raise
                log.warning("creating topic %s: a Kafka node is away (%s); retrying",
                            topic, type(error).__name__)
                await asyncio.sleep(RETRY_SECONDS)
                await client.force_metadata_update()
