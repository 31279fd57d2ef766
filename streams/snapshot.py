"""Snapshots of the resolve stage, so a restarted worker does not replay the whole resolve topic.

Without a snapshot a worker that gets the resolve partition loads every message of
``<prefix>.internal.resolve`` before its committed offset (``streams.recovery``): minutes at
a million people. With one, it loads the newest usable snapshot and replays only the messages
after the snapshot's offset.

What a snapshot holds: the resolver's persistent state (``Resolver.to_state``'s content:
the records, what was published per golden id, the stewards' decisions in force, the edges
and clusters and what they were derived with, written entry by entry so a million people are
never copied into one dict), the links held by the stage, the fingerprint of the scoring
model the state was resolved with, the id of the resolve topic it was read from, and the
**offset** it covers: every message of the topic before it, none after.

Why a snapshot plus the messages after it gives what the whole topic gives: the stage's state
after messages ``0..S-1`` (the live worker's own, not a rebuilt one) plus messages ``S..U-1``
as the topic holds them now. Compaction removes a message only when a later message of the
same key exists; so it never removes a message at or after ``S`` unless a later message of
the same key, also after ``S``, is still there and is replayed; and a message before ``S``
that compaction removed was superseded by a later one, which is in the snapshot if before
``S`` and replayed if after. The resolver keeps the latest version of each source record and
is order-independent, so the result is the state of the full rebuild. Model-change markers at
or after ``S`` are replayed like any message.

A snapshot is used only when nothing casts doubt on it (each check logs its reason and the
next older snapshot, then the whole topic, is used instead):

- it reads back whole: a header, the lines, a trailer with the count of lines and their
  SHA-256 (a truncated or altered file fails);
- its offset is not beyond the first offset the worker is handed (a snapshot taken after
  messages whose offsets were never committed: those must be processed again, with outputs);
- its model is the one in force at its offset, as the model topic records it;
- the resolve topic is the one it was taken from (same topic id; its earliest offset not
  beyond the snapshot's: a recreated topic starts its numbering again).

Files: ``<data dir>/resolve-snapshots/resolve-<offset>.snapshot``, mode 0600 in a 0700
folder (they hold personal data, like the RocksDB tables next to them), written to a temp
file, flushed to disk and renamed, so a reader sees a whole snapshot or none. The newest
``KEEP_SNAPSHOTS`` are kept: the newest may cover offsets the worker never committed.

Erasure (``tipsync erase``, docs/SECURITY.md "Erasure and retention"): once a record's DELETE
has passed resolve, the erase command writes a tombstone under the record's key on the resolve
topic; the worker, handed it, writes a snapshot at its offset (without the record) and deletes
every older one (``keep=1``), or, with snapshots off, deletes them all
(``remove_snapshots``). A restart before the tombstone's offset is committed then finds no
usable snapshot and replays the topic, which no longer holds the record either.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

import orjson

from schemas import config
from streams.resolve import Resolver
from streams.resolve.resolver import READABLE_STATE_FORMATS, STATE_FORMAT
from streams.resolve_stage import ResolveStage

SNAPSHOT_FORMAT: Final = 1
DIRECTORY_NAME: Final = "resolve-snapshots"
KEEP_SNAPSHOTS: Final = 2
# Writing a snapshot pauses resolve (its state must not change while it is written): at most
# this share of resolve's time goes to snapshots, however often they are asked for.
MAX_WRITE_SHARE: Final = 0.1
# ... for writes that take this long or longer (a big stage's: seconds to minutes). A shorter
# one is never held back: it is mostly fixed costs (fsync, the file's rename), and the share
# over the one short interval until the next message says nothing about resolve's time;
# holding it back would leave the last messages of a burst uncovered until another arrives,
# however few ``every_records`` asks for (the due check runs only when a message comes).
MIN_THROTTLED_WRITE_SECONDS: Final = 1.0
_NAME = re.compile(r"^resolve-(\d{20})\.snapshot$")

# The line ResolveRecovery.rebuild (streams.recovery) logs when done (the benchmark reads it
# back from the worker log).
REBUILT_LINE: Final = re.compile(
    r"resolve: rebuilt from (?P<records>\d+) records in (?P<seconds>[\d.]+) s "
    r"\((?P<source>[^:]*): (?P<read>\d+) messages read\)"
)


class SnapshotError(Exception):
    """A snapshot that cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class SnapshotHeader:
    """The first line of a snapshot file: what it covers and what it was made with."""

    format: int
    state_format: int  # the resolver's STATE_FORMAT its records were written in
    offset: int  # covers every message of the resolve topic before this offset
    model_fingerprint: str
    topic_id: str | None
    records: int
    published: int
    links: int
    written_at: str
    # what the saved edges and clusters were derived with (``Resolver.derivation``); None in
    # a state of format 1, which has none
    derived: dict[str, Any] | None = None


@dataclass(frozen=True)
class SnapshotFile:
    path: Path
    offset: int


@dataclass(frozen=True)
class SnapshotPolicy:
    """When the worker writes a snapshot: after ``every_records`` resolve messages or
    ``every_seconds`` (with at least one message), but never so often that writing takes
    more than ``MAX_WRITE_SHARE`` of the time when a write takes a second or more
    (``MIN_THROTTLED_WRITE_SECONDS``). ``every_records`` 0 turns snapshots off."""

    every_records: int = config.DEFAULT_SNAPSHOT_EVERY_RECORDS
    every_seconds: float = config.DEFAULT_SNAPSHOT_EVERY_SECONDS

    @property
    def enabled(self) -> bool:
        return self.every_records > 0

    def due(self, records_since: int, seconds_since: float, last_write_seconds: float) -> bool:
        if not self.enabled or records_since <= 0:
            return False
        if (last_write_seconds >= MIN_THROTTLED_WRITE_SECONDS
                and seconds_since * MAX_WRITE_SHARE < last_write_seconds):
            return False
        return records_since >= self.every_records or seconds_since >= self.every_seconds


def snapshot_directory(data_dir: Path) -> Path:
    return data_dir / DIRECTORY_NAME


def snapshot_files(directory: Path) -> list[SnapshotFile]:
    """The snapshots in ``directory``, newest (highest offset) first."""
    if not directory.is_dir():
        return []
    found = [
        SnapshotFile(path, int(match.group(1)))
        for path in directory.iterdir()
        if (match := _NAME.match(path.name))
    ]
    return sorted(found, key=lambda snapshot: snapshot.offset, reverse=True)


def remove_snapshots(directory: Path) -> int:
    """Delete every snapshot in ``directory`` (an erasure with snapshots off, or whose new
    snapshot could not be written); returns how many were deleted."""
    found = snapshot_files(directory)
    for snapshot in found:
        snapshot.path.unlink(missing_ok=True)
    return len(found)


def write_snapshot(
    directory: Path, stage: ResolveStage, offset: int, topic_id: str | None,
    keep: int = KEEP_SNAPSHOTS,
) -> SnapshotFile:
    """Write the stage's state as covering the resolve topic before ``offset``, atomically;
    then delete all but the newest ``keep`` (1 after an erasure: only the new one). The stage
    must not change meanwhile (the caller holds resolve still)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    resolver = stage.resolver
    header = SnapshotHeader(
        format=SNAPSHOT_FORMAT, state_format=STATE_FORMAT, offset=offset,
        model_fingerprint=stage.model_fingerprint, topic_id=topic_id,
        records=len(resolver.records), published=len(resolver.published),
        links=len(stage.links), written_at=datetime.now(UTC).isoformat(),
        derived=resolver.derivation(),
    )
    # mkstemp creates the file with mode 0600
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".writing-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb", buffering=1 << 20) as out:
            digest = hashlib.sha256()
            lines = 0

            def line(data: bytes) -> None:
                nonlocal lines
                digest.update(data)
                out.write(data)
                out.write(b"\n")
                lines += 1

            line(orjson.dumps(asdict(header)))
            for person_id, entry in resolver.published.items():
                line(orjson.dumps(("published", person_id, entry)))
            for decision in resolver.stewardship.to_state():
                line(orjson.dumps(("decision", f"{decision['left']}|{decision['right']}",
                                   decision)))
            for key, record in resolver.records.items():
                line(orjson.dumps(("record", key, record.to_dict())))
            for key, pairs in resolver.edge_items():
                line(orjson.dumps(("edges", key, pairs)))
            for person_id, members in resolver.cluster_items():
                line(orjson.dumps(("cluster", person_id, members)))
            for link_key, link_state in stage.link_states():
                line(orjson.dumps(("link", link_key, link_state)))
            out.write(orjson.dumps({"lines": lines, "sha256": digest.hexdigest()}) + b"\n")
            out.flush()
            os.fsync(out.fileno())
        final = directory / f"resolve-{offset:020d}.snapshot"
        os.replace(temporary, final)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_directory(directory)
    for old in snapshot_files(directory)[keep:]:
        old.path.unlink(missing_ok=True)
    for leftover in directory.glob(".writing-*.tmp"):  # of a worker killed while writing
        if leftover.name != Path(temporary).name:
            leftover.unlink(missing_ok=True)
    return SnapshotFile(final, offset)


def read_header(path: Path) -> SnapshotHeader:
    """The header of a snapshot file (cheap: one line)."""
    try:
        with path.open("rb") as source:
            return _header(path, source.readline())
    except OSError as error:
        raise SnapshotError(f"snapshot {path} cannot be read ({error})") from None


def read_snapshot(
    path: Path, resolver_factory: Callable[[dict[str, Any]], Resolver]
) -> tuple[SnapshotHeader, ResolveStage]:
    """The stage a snapshot holds; ``resolver_factory`` makes the resolver from the state
    (``Resolver.from_state`` with the worker's trust ranks and the snapshot's model).

    Raises ``SnapshotError`` when the file is not a whole snapshot of this format."""
    try:
        with path.open("rb") as source:
            return _read(path, source, resolver_factory)
    except OSError as error:
        raise SnapshotError(f"snapshot {path} cannot be read ({error})") from None
    except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as error:
        raise SnapshotError(
            f"snapshot {path} is damaged ({type(error).__name__}: {error}); it is ignored"
        ) from None


def _header(path: Path, first: bytes) -> SnapshotHeader:
    try:
        fields = orjson.loads(first)
        header = SnapshotHeader(**fields)
    except (orjson.JSONDecodeError, TypeError) as error:
        raise SnapshotError(f"snapshot {path} has no readable header ({error})") from None
    if header.format != SNAPSHOT_FORMAT or header.state_format not in READABLE_STATE_FORMATS:
        raise SnapshotError(
            f"snapshot {path} is of format {header.format}/{header.state_format}, this worker "
            f"reads {SNAPSHOT_FORMAT}/{'|'.join(map(str, READABLE_STATE_FORMATS))}; it is "
            "ignored (the topic is replayed)"
        )
    return header


class _Entries:
    """A snapshot's lines after the header, parsed one at a time, checked against the trailer
    (count and SHA-256) when it is reached; a line can be put back for the next section."""

    def __init__(self, path: Path, source: IO[bytes], header_line: bytes) -> None:
        self.path, self.source = path, source
        self.digest = hashlib.sha256(header_line)
        self.lines = 1
        self._back: list[Any] = []

    def next(self) -> Any:
        if self._back:
            return self._back.pop()
        raw = self.source.readline()
        if not raw:
            raise SnapshotError(
                f"snapshot {self.path} ends before its trailer (cut short); it is ignored"
            )
        data = raw.rstrip(b"\n")
        entry = orjson.loads(data)
        if isinstance(entry, dict):  # the trailer
            if entry.get("lines") != self.lines or entry.get("sha256") != self.digest.hexdigest():
                raise SnapshotError(
                    f"snapshot {self.path} does not match its trailer ({self.lines} lines read, "
                    f"{entry.get('lines')} written, or their checksum differs); it is ignored"
                )
            return entry
        self.digest.update(data)
        self.lines += 1
        return entry

    def put_back(self, entry: Any) -> None:
        self._back.append(entry)

    def section(self, kind: str) -> Iterator[Any]:
        """The entries of one section (``published``, ``decision``, ``record``, ``edges``,
        ``cluster``, ``link``), in file order."""
        while True:
            entry = self.next()
            if isinstance(entry, list) and entry[0] == kind:
                yield entry
                continue
            self.put_back(entry)
            return


def _read(
    path: Path, source: IO[bytes], resolver_factory: Callable[[dict[str, Any]], Resolver]
) -> tuple[SnapshotHeader, ResolveStage]:
    header_line = source.readline().rstrip(b"\n")
    header = _header(path, header_line)
    entries = _Entries(path, source, header_line)
    published = {entry[1]: entry[2] for entry in entries.section("published")}
    # (a snapshot of state format 2 has none)
    decisions = [entry[2] for entry in entries.section("decision")]

    class _Section:
        """One section, read as ``from_state`` iterates it (never all in memory)."""

        def __init__(self, kind: str) -> None:
            self.kind = kind

        def items(self) -> Iterator[tuple[str, Any]]:
            return ((entry[1], entry[2]) for entry in entries.section(self.kind))

    state = {
        "format": header.state_format, "published": published, "decisions": decisions,
        "records": _Section("record"),
        "derived": header.derived, "edges": _Section("edges"), "clusters": _Section("cluster"),
    }
    stage = ResolveStage(lambda: resolver_factory(state))
    for entry in entries.section("link"):
        stage.restore_link(entry[2])
    trailer = entries.next()
    if not isinstance(trailer, dict):
        raise SnapshotError(
            f"snapshot {path} has a {trailer[0]!r} line out of place; it is ignored"
        )
    if len(stage.resolver.records) != header.records or len(stage.links) != header.links:
        raise SnapshotError(
            f"snapshot {path} holds {len(stage.resolver.records)} records and "
            f"{len(stage.links)} links, its header says {header.records} and {header.links}; "
            "it is ignored"
        )
    return header, stage


def _sync_directory(directory: Path) -> None:
    # the rename itself reaches the disk only with the folder's entry
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def snapshot_doubt(
    header: SnapshotHeader, until_offset: int, model_fingerprint: str, topic_id: str | None,
    earliest_offset: int,
) -> str | None:
    """Why a snapshot must not be used for a rebuild up to ``until_offset``, or None.

    ``model_fingerprint`` is the model in force at the snapshot's offset as the model topic
    records it, ``topic_id`` and ``earliest_offset`` the resolve topic's now."""
    if header.offset > until_offset:
        return (f"it covers offsets up to {header.offset}, beyond {until_offset}, the first "
                "offset this worker is handed (messages after that must be processed again)")
    if header.model_fingerprint != model_fingerprint:
        return (f"it was resolved with scoring model {header.model_fingerprint}, the model in "
                f"force at its offset is {model_fingerprint}")
    if topic_id is None or header.topic_id != topic_id:
        return (f"it was taken from resolve topic id {header.topic_id}, the topic's id is now "
                f"{topic_id} (recreated, or unknown)")
    if earliest_offset > header.offset:
        return (f"the resolve topic now starts at offset {earliest_offset}, after the "
                f"snapshot's {header.offset} (recreated or truncated)")
    return None
