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
from streams.snapshot import KEEP_SNAPSHOTS, SnapshotPolicy, remove_snapshots, write_snapshot

log = logging.getLogger("tipsync.streams")


class SnapshotSchedule:
    def __init__(
        self, policy: SnapshotPolicy, directory: Path, resolve_topic: str,
        topic_id: Callable[[], str | None], clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.directory = directory
        self._resolve_topic = resolve_topic  # named in the log when writing fails
        # The resolve topic's id, written into each snapshot: read at the first snapshot of
        # a stage and kept until the stage is rebuilt. It names the topic the stage was read
        # from (a topic recreated meanwhile then makes the snapshot distrusted, rather than
        # vouched for by the new id), and spares each snapshot a broker round trip (a new
        # client's TLS and SCRAM handshake: ~50 ms of resolve's wait, counted as writing).
        self._read_topic_id = topic_id
        self._topic_id: str | None = None
        self._clock = clock
        self.since_snapshot = 0  # resolve messages the newest snapshot does not cover
        self._snapshot_clock = clock()
        self._write_seconds = 0.0
        # Whether a snapshot on disk may hold a record the stage has deleted since: true until
        # an erasure's snapshot is written (a rebuilt stage cannot tell what older files hold)
        self.may_hold_deleted = True

    def due(self) -> bool:
        return self.policy.due(self.since_snapshot, self._clock() - self._snapshot_clock,
                               self._write_seconds)

    def count(self) -> None:
        """One more resolve message the newest snapshot does not cover."""
        self.since_snapshot += 1

    def rebuilt(self, replayed: int | None) -> None:
        """The stage was rebuilt and ``replayed`` messages of the resolve topic read into it
        (no snapshot covers them); None when the topic had nothing to read (a new stage)."""
        self.may_hold_deleted = True
        self._topic_id = None  # read again for the new stage
        if replayed is None:
            self.since_snapshot = 0
        else:
            self.since_snapshot, self._snapshot_clock = replayed, self._clock()

    def deleted(self) -> None:
        """The stage resolved a DELETE: the snapshots on disk may hold what it removed."""
        self.may_hold_deleted = True

    async def purge(self, stage: ResolveStage, offset: int) -> None:
        """After an erasure (a tombstone at ``offset`` on the resolve topic): a snapshot of
        the stage at ``offset`` and no older one, so no snapshot holds a record deleted
        before it. Nothing to do when one was written since the last DELETE (the erasure of
        several records writes one tombstone each, after all their DELETEs)."""
        if not self.may_hold_deleted:
            return
        if self.policy.enabled:
            written = await self.write(stage, offset, keep=1)
            if written:
                self.may_hold_deleted = False
                return
        removed = await asyncio.to_thread(remove_snapshots, self.directory)
        self.may_hold_deleted = False
        log.warning("resolve: erasure at offset %d: %d snapshot(s) deleted from %s (none is"
                    " written%s); a restart replays %s", offset, removed, self.directory,
                    "" if self.policy.enabled else ": snapshots are off", self._resolve_topic)

    async def write(self, stage: ResolveStage, offset: int, keep: int | None = None) -> bool:
        """Write the stage, covering the resolve topic before ``offset``, to the data dir,
        keeping the newest ``keep`` snapshots (default ``KEEP_SNAPSHOTS``); True once written.
        Resolve waits meanwhile (its state must not change while written); the writing runs
        in a thread so heartbeats and ingest go on. A failure is logged, never fatal."""
        started = time.perf_counter()
        try:
            if self._topic_id is None:  # (None again when it could not be read)
                self._topic_id = await asyncio.to_thread(self._read_topic_id)
            written = await asyncio.to_thread(
                write_snapshot, self.directory, stage, offset, self._topic_id,
                KEEP_SNAPSHOTS if keep is None else keep,
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
        if written is None:
            return False
        log.warning("resolve: snapshot of %d records at offset %d written to %s in %.1f s",
                    len(stage.resolver.records), offset, written.path, seconds)
        return True
