"""When the live resolve stage is written to a snapshot, and the writing itself.

``streams.snapshot`` says what a snapshot holds and when one may be trusted; this module
keeps the count of resolve messages and the time since the newest snapshot, asks the
``SnapshotPolicy`` whether one is due, and writes it. Resolve waits meanwhile (its state must
not change while written); the writing runs in a thread so heartbeats and ingest go on. A
failure is logged, never fatal: a restart then replays more of the resolve topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from streams.resolve_stage import ResolveStage
from streams.snapshot import SnapshotPolicy, write_snapshot

log = logging.getLogger("tipsync.streams")


class SnapshotSchedule:
    def __init__(
        self, policy: SnapshotPolicy, directory: Path, resolve_topic: str,
        topic_id: Callable[[], str | None], clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.directory = directory
        self._resolve_topic = resolve_topic  # named in the log when writing fails
        self._topic_id = topic_id  # the resolve topic's id, written into each snapshot
        self._clock = clock
        self.since_snapshot = 0  # resolve messages the newest snapshot does not cover
        self._snapshot_clock = clock()
        self._write_seconds = 0.0

    def due(self) -> bool:
        return self.policy.due(self.since_snapshot, self._clock() - self._snapshot_clock,
                               self._write_seconds)

    def count(self) -> None:
        """One more resolve message the newest snapshot does not cover."""
        self.since_snapshot += 1

    def rebuilt(self, replayed: int | None) -> None:
        """The stage was rebuilt and ``replayed`` messages of the resolve topic read into it
        (no snapshot covers them); None when the topic had nothing to read (a new stage)."""
        if replayed is None:
            self.since_snapshot = 0
        else:
            self.since_snapshot, self._snapshot_clock = replayed, self._clock()

    async def write(self, stage: ResolveStage, offset: int) -> None:
        """Write the stage, covering the resolve topic before ``offset``, to the data dir.
        Resolve waits meanwhile (its state must not change while written); the writing runs
        in a thread so heartbeats and ingest go on. A failure is logged, never fatal."""
        started = time.perf_counter()
        try:
            topic_id = await asyncio.to_thread(self._topic_id)
            written = await asyncio.to_thread(
                write_snapshot, self.directory, stage, offset, topic_id
            )
        except OSError as error:
            log.error("resolve: the snapshot at offset %d could not be written to %s (%s); "
                      "resolve goes on, but a restart replays more of %s: free disk space or "
                      "fix the folder's permissions", offset, self.directory, error,
                      self._resolve_topic)
            written = None
        seconds = time.perf_counter() - started
        self.since_snapshot, self._snapshot_clock = 0, self._clock()
        self._write_seconds = seconds
        if written is not None:
            log.warning("resolve: snapshot of %d records at offset %d written to %s in %.1f s",
                        len(stage.resolver.records), offset, written.path, seconds)
