"""An input an agent could not finish is never committed: the worker stops instead.

faust 0.15.3 acknowledges the message an agent holds when the agent's body raises (the
stream's iterator acknowledges it as it is closed: ``Stream._c_aiter``'s ``finally``), its
supervisor starts the agent again, and the next commit passes the message as processed.
Whatever the agent had not done for it is lost: for ingest, the messages before it that faust
had skipped (``streams.input_gaps`` reads them first, and a read that fails raises), the
event's own output; for resolve, its outputs. Each handler turns a bad *message* into a dead
letter itself; what reaches this guard is a failure of the worker (Kafka unreachable past
the retries, a bug), and a worker that cannot process its input must not commit it.

``finished_or_stop`` runs one message's handler; if it raises, commits are held for good
(``OutputProducer.hold_commits``: every later flush raises, and faust flushes before it
commits), the worker is stopped (``stop``: the app's crash), and the agent waits for that
stop instead of taking the next message. Its supervisor (systemd, Kubernetes, ``tipsync
demo``'s) starts it again; the restarted worker begins at the committed offset, before the
message. The log names the stage, the message's place and the error's type, never its text
(which may quote a record's fields).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import traceback
from collections.abc import Awaitable, Callable
from typing import Protocol

from streams.outputs import InputMessage

log = logging.getLogger("tipsync.streams")

# How long a stopping worker may take before it exits hard (streams.worker explains why)
STOP_GRACE_SECONDS = 20.0


class CommitHolder(Protocol):
    def hold_commits(self, reason: str) -> None: ...


async def finished_or_stop(
    stage: str, handle: Callable[[InputMessage], Awaitable[None]], message: InputMessage,
    commits: CommitHolder, stop: Callable[[str], None],
) -> None:
    try:
        await handle(message)
    except Exception as error:  # noqa: BLE001 - any failure: nothing after it is committed
        reason = (f"{stage} could not finish {message.topic}[{message.partition}]@"
                  f"{message.offset} ({type(error).__name__})")
        commits.hold_commits(reason)
        # where it failed: the frames (file, line, code), not the error's text
        log.error("%s, at:\n%s", reason, "".join(traceback.format_tb(error.__traceback__)[-4:]))
        stop(reason)
        await asyncio.Event().wait()  # until the stop cancels the agent


def exit_hard_after_grace(reason: str, code: int = 1) -> None:
    """Exit the process ``STOP_GRACE_SECONDS`` from now unless it has exited by then: a
    crash of the app (``stop``) that faust's shutdown leaves hanging must still end the
    worker, so its supervisor starts it again. Safe: its commits are held."""
    def exit_hard() -> None:
        log.critical("the stream worker did not stop within %.0f s of: %s; exiting now",
                     STOP_GRACE_SECONDS, reason)
        logging.shutdown()
        os._exit(code)

    timer = threading.Timer(STOP_GRACE_SECONDS, exit_hard)
    timer.daemon = True
    timer.start()
