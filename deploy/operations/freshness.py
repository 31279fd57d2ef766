"""Freshness: how old a change is when it becomes visible in the reconciled store.

Freshness of one change = (when its row became visible in PostgreSQL) − (its ``event_time``
at the agency). It adds up everything on the way: the agency's export schedule, the
producer, Kafka, both stream stages, the sink's batching.

Visibility time, in order of precision:

1. ``pg_xact_commit_timestamp(xmin)`` of the row, when the server runs with
   ``track_commit_timestamp = on`` (exact);
2. otherwise the moment this watcher first saw the row: it polls the ``reconciled.*_source``
   tables every ``interval`` seconds for rows written by transactions newer than the last
   poll, so the figure is an upper bound, too high by at most one interval.

The sink's own tables carry no commit time on purpose (every table is a pure function of the
topics), which is why the time comes from PostgreSQL's transaction bookkeeping (``xmin``).
Transaction ids are compared modulo 2^32: a watch that spans an xid wraparound (four billion
transactions) loses the changes of that one poll.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import psycopg

from deploy.operations.offsets import OperationsError
from schemas import config

SOURCE_TABLES = (
    "person_source", "case_source", "report_source", "organisation_source",
    "location_source", "link_source",
)
# Upper bounds (seconds) of the freshness histogram buckets; the same in the exporter.
FRESHNESS_BUCKETS: tuple[float, ...] = (
    0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
)
XID_MODULO = 2**32


@dataclass
class Histogram:
    """Cumulative-free bucket counts: ``counts[i]`` changes took at most ``buckets[i]``
    seconds and more than ``buckets[i-1]``; the last count is the overflow (+Inf)."""

    buckets: tuple[float, ...] = FRESHNESS_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: int = 0
    sum_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.total += 1
        self.sum_seconds += seconds

    def quantile(self, q: float) -> float | None:
        """Estimated like Prometheus' histogram_quantile: linear within the bucket."""
        if not self.total:
            return None
        rank = q * self.total
        cumulative = 0
        for index, count in enumerate(self.counts):
            if cumulative + count >= rank and count:
                lower = self.buckets[index - 1] if index else 0.0
                if index == len(self.buckets):
                    return math.inf if lower == 0 else lower  # only known to be above it
                upper = self.buckets[index]
                return lower + (upper - lower) * (rank - cumulative) / count
            cumulative += count
        return None

    def as_json(self) -> dict[str, object]:
        cumulative, rows = 0, []
        for bound, count in zip((*self.buckets, math.inf), self.counts, strict=True):
            cumulative += count
            rows.append({"le": "+Inf" if bound == math.inf else bound, "count": cumulative})
        return {
            "changes": self.total,
            "mean_seconds": round(self.sum_seconds / self.total, 3) if self.total else None,
            **{
                f"p{int(q * 100)}_seconds": (None if value is None else round(value, 3))
                for q in (0.5, 0.95, 0.99)
                for value in [self.quantile(q)]
            },
            "buckets": rows,
        }


def histogram_of(ages: Iterable[float], buckets: Sequence[float] = FRESHNESS_BUCKETS) -> Histogram:
    histogram = Histogram(buckets=tuple(buckets))
    for age in ages:
        histogram.observe(max(age, 0.0))
    return histogram


def render_histogram(histogram: Histogram, label: str) -> str:
    if not histogram.total:
        return f"{label}: no change became visible while watching"
    summary = histogram.as_json()
    lines = [
        f"{label}: {histogram.total} changes; mean {summary['mean_seconds']} s,"
        f" p50 {summary['p50_seconds']} s, p95 {summary['p95_seconds']} s,"
        f" p99 {summary['p99_seconds']} s",
        f"    {'AT MOST':>10}  {'CHANGES':>8}",
    ]
    width = max(histogram.counts)
    for bound, count in zip((*histogram.buckets, math.inf), histogram.counts, strict=True):
        if count:
            bar = "#" * max(1, round(40 * count / width))
            limit = "more" if bound == math.inf else f"{bound:g} s"
            lines.append(f"    {limit:>10}  {count:>8}  {bar}")
    return "\n".join(lines)


class FreshnessWatcher:
    """Polls the reconciled store for changes that became visible since the last poll."""

    def __init__(self, database_url: str) -> None:
        self.connection = psycopg.connect(database_url, autocommit=True, connect_timeout=5)
        self.exact = (
            self.connection.execute("SHOW track_commit_timestamp").fetchone() or ("off",)
        )[0] == "on"
        self.tables = [
            name for (name,) in self.connection.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'reconciled' AND table_name = ANY(%s)",
                (list(SOURCE_TABLES),),
            ).fetchall()
        ]
        if not self.tables:
            self.connection.close()
            raise OperationsError(
                f"the database at {database_url.split('?')[0]} has no reconciled.*_source"
                " table, so no change can become visible there yet; run the sink (its"
                f" migrations create them) or point {config.DATABASE_URL} at the reconciled"
                " store"
            )
        self._seen: dict[tuple[str, str, str, int], int] = {}  # change -> its xid
        self._lower_xid = self._oldest_running_xid()
        self._changes()  # what is already there when the watch starts is not counted

    def close(self) -> None:
        self.connection.close()

    def _oldest_running_xid(self) -> int:
        row = self.connection.execute(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
        ).fetchone()
        return int(row[0]) % XID_MODULO if row else 0

    def _changes(self) -> list[float]:
        ages: list[float] = []
        visible = (
            "pg_xact_commit_timestamp(xmin)" if self.exact else "clock_timestamp()"
        )
        for table in self.tables:
            rows = self.connection.execute(
                f"SELECT agency_id, source_record_id, source_version, xmin::text::bigint,"
                f" extract(epoch FROM {visible} - event_time)"
                f" FROM reconciled.{table}"
                " WHERE event_time IS NOT NULL AND xmin::text::bigint >= %s",
                (self._lower_xid,),
            ).fetchall()
            for agency_id, record_id, version, xid, age in rows:
                key = (table, agency_id, record_id, int(version))
                if key in self._seen:
                    continue
                self._seen[key] = int(xid)
                if age is not None:
                    ages.append(float(age))
        return ages

    def poll(self) -> list[float]:
        """Ages (seconds) of the changes that became visible since the previous poll."""
        next_lower = self._oldest_running_xid()
        ages = self._changes()
        # A transaction older than the oldest still running can never show up again.
        self._seen = {key: xid for key, xid in self._seen.items() if xid >= next_lower}
        self._lower_xid = next_lower
        return ages


def watch_freshness(
    database_url: str, seconds: float, interval: float = 1.0
) -> tuple[Histogram, bool]:
    """Watch for ``seconds``; the histogram of freshness and whether it is exact."""
    watcher = FreshnessWatcher(database_url)
    histogram = Histogram()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(min(interval, max(deadline - time.monotonic(), 0)))
            for age in watcher.poll():
                histogram.observe(max(age, 0.0))
    finally:
        watcher.close()
    return histogram, watcher.exact
