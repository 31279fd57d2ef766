"""An input an agent could not finish is never committed (``streams.agent_guard``).

faust's own stream (its compiled ``Stream`` iterator, as the worker runs it) over one
partition, without a broker: faust acknowledges the message an agent held when the agent's
body raises, so its next commit would pass a message nobody finished. Under the guard the
commits are held, the worker is told to stop, and the agent takes no further message."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.events import Event
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.agent_guard import finished_or_stop

PARTITION = TP("tip.agency.police-ctu.case", 0)


class Commits:
    def __init__(self) -> None:
        self.held: list[str] = []

    def hold_commits(self, reason: str) -> None:
        self.held.append(reason)


async def _run(body: Callable[[Any, Any], Awaitable[None]]) -> tuple[list[int], int | None]:
    """Offsets 10, 11, 12 through an agent running ``body(app, message)`` per message; the
    handler fails at 11. Returns the offsets the handler got and what faust would commit."""
    app = faust.App("guard-test", broker="kafka://127.0.0.1:1", store="memory://",
                    web_enabled=False, autodiscover=False)
    topic = app.topic(PARTITION.topic, key_serializer="raw", value_serializer="raw")
    consumer = app.consumer  # made, not started
    consumer._committed_offset[PARTITION] = 10
    app.consumer_generation_id = 1
    app.flow_control.resume()
    app.topics._acking_topics.add(PARTITION.topic)  # what subscribing an agent does
    stream = topic.stream()

    async def agent() -> None:
        async for event in stream.events():
            await body(app, event.message)

    task = asyncio.ensure_future(agent())
    await asyncio.sleep(0.05)
    for offset in (10, 11, 12):
        message = ConsumerMessage(PARTITION.topic, 0, offset, 0.0, 0, None, b"k", b"v", None,
                                  tp=PARTITION, generation_id=1)
        await stream.channel.put(Event(app, b"k", b"v", None, message))
    await asyncio.sleep(0.2)
    task.cancel()  # what the worker's stop does to its agents
    await asyncio.gather(task, return_exceptions=True)
    gc.collect()
    await asyncio.sleep(0.05)
    return handled, consumer._new_offset(PARTITION)


handled: list[int] = []


async def _handler(message: Any) -> None:
    handled.append(message.offset)
    if message.offset == 11:
        raise ConnectionError("Jane Roe's record could not be read")  # a field in the text


def test_faust_commits_past_the_message_an_agent_failed_on():
    # what the guard is for, in the pinned faust: 11 failed, the agent is not guarded, and
    # faust would commit 12 (the supervisor would also start the agent again, for 12)
    handled.clear()

    async def unguarded(app: Any, message: Any) -> None:
        await _handler(message)

    offsets, commit = asyncio.run(_run(unguarded))
    assert offsets == [10, 11] and commit == 12


def test_a_guarded_agent_holds_the_commits_stops_the_worker_and_takes_nothing_more():
    handled.clear()
    commits, stops = Commits(), list[str]()

    async def guarded(app: Any, message: Any) -> None:
        await finished_or_stop("ingest", _handler, message, commits, stops.append)

    offsets, _ = asyncio.run(_run(guarded))
    assert offsets == [10, 11]  # 12 was not taken
    reason = f"ingest could not finish {PARTITION.topic}[0]@11 (ConnectionError)"
    assert commits.held == [reason] and stops == [reason]
    assert "Jane" not in reason  # the error's text (a record's fields) is not repeated


def test_a_stop_that_hangs_still_ends_the_worker(monkeypatch: Any):
    # faust's shutdown can hang on one of its threads: the worker exits hard after the grace
    import threading

    import streams.agent_guard as agent_guard

    exited = threading.Event()
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        exited.set()

    monkeypatch.setattr(agent_guard, "STOP_GRACE_SECONDS", 0.05)
    monkeypatch.setattr(agent_guard.os, "_exit", fake_exit)
    agent_guard.exit_hard_after_grace("ingest could not finish a[0]@5 (KafkaError)")
    assert exited.wait(5) and codes == [1]
