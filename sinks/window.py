"""When the sink's batch closes: as soon as it has caught up, else at its size or time limit.

At a trickle, waiting out a fixed window only delays what has been read already: a change
became visible up to a window later than it could. Under a backlog big batches pay (more
changes per key reduced away, one transaction for many). The consumer can tell which case it
is in without asking the broker: every fetch response carries the partition's high
watermark, which librdkafka keeps (``get_watermark_offsets(cached=True)``), and the
consumer's position is the offset after the last message handed to the sink. A partition
whose position has reached its high watermark has nothing more to read now; when every
owned partition is there, the batch closes. (The stream app does not write transactionally,
so the high watermark is also the end a read_committed consumer reaches.)

Only latency and batch size depend on this, never exactly-once: whatever a batch holds, its
rows and its offsets are written in one transaction. A partition whose end is not known yet
(no fetch response since its assignment) counts as behind, which leaves the batch to its
size or time limit, as before.
"""

from __future__ import annotations

from collections.abc import Mapping

Position = tuple[str, int]  # (topic, partition)

# What librdkafka returns for an offset or watermark it does not know (OFFSET_INVALID).
UNKNOWN = -1001


def caught_up(next_offsets: Mapping[Position, int], ends: Mapping[Position, int]) -> bool:
    """True when every partition's next offset to read has reached its known end.

    ``next_offsets``: per owned partition, the offset the consumer will read next;
    ``ends``: per partition, the high watermark of its last fetch (``UNKNOWN`` or absent when
    none came yet).
    """
    for position, next_offset in next_offsets.items():
        end = ends.get(position, UNKNOWN)
        if end < 0 or next_offset < 0 or next_offset < end:
            return False
    return True
