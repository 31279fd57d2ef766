"""The operators' pages: agency data quality (as the analyst, so within their clearance) and
pipeline status (lag per consumer group in messages and seconds, freshness, dead letters per
stage and reason, services up). The status page uses ``deploy.operations`` as ``tipsync lag``
does, with the ``monitor`` principal; it shows counts and offsets, never a record."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families
from psycopg.rows import dict_row
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deploy.console.pipeline import Pipeline
from deploy.console.sessions import Session
from deploy.operations.lag import GroupLag
from deploy.operations.metric_names import SINK as SINK_METRICS
from deploy.operations.metric_names import STREAM as STREAM_METRICS
from deploy.operations.offsets import OffsetReader, OperationsError
from deploy.operations.survey import survey_lag
from schemas import config
from schemas.topics import DLQ_STAGES, ROOT

# How many stream workers' metrics ports to look at (worker i serves on the base port + i).
STREAM_WORKER_PORTS = 8
# The stream's and the sink's dead-letter counters, as metric_names declares them.
DEAD_LETTER_SAMPLES = frozenset(
    metric.name for metric in (*STREAM_METRICS, *SINK_METRICS)
    if metric.kind == "counter" and "reason" in metric.labels)

_SOURCES = """
WITH sources AS (
    SELECT 'person' AS entity, agency_id, deleted, event_time FROM reconciled.person_source
    UNION ALL SELECT 'case', agency_id, deleted, event_time FROM reconciled.case_source
    UNION ALL SELECT 'report', agency_id, deleted, event_time FROM reconciled.report_source
    UNION ALL SELECT 'organisation', agency_id, deleted, event_time
              FROM reconciled.organisation_source
    UNION ALL SELECT 'location', agency_id, deleted, event_time
              FROM reconciled.location_source
    UNION ALL SELECT 'link', agency_id, deleted, event_time FROM reconciled.link_source
)
SELECT agency_id, entity, count(*) FILTER (WHERE NOT deleted) AS records,
       count(*) FILTER (WHERE deleted) AS deleted, max(event_time) AS last_change
FROM sources GROUP BY agency_id, entity ORDER BY agency_id, entity
"""
# Of the golden people an agency's live records belong to, the share with each value.
_COMPLETENESS = """
WITH known AS (
    SELECT DISTINCT agency_id, person_id FROM reconciled.person_source WHERE NOT deleted
)
SELECT k.agency_id, count(*) AS people,
       avg((p.date_of_birth IS NOT NULL)::int) AS date_of_birth,
       avg((p.sex IS NOT NULL)::int) AS sex,
       avg((cardinality(p.citizenship) > 0)::int) AS citizenship,
       avg((jsonb_array_length(p.identifiers) > 0)::int) AS identifiers,
       avg((cardinality(p.phones) > 0)::int) AS phones,
       avg((jsonb_array_length(p.addresses) > 0)::int) AS addresses
FROM known AS k JOIN reconciled.person AS p USING (person_id)
GROUP BY k.agency_id ORDER BY k.agency_id
"""
COMPLETENESS_FIELDS = ("date_of_birth", "sex", "citizenship", "identifiers", "phones",
                       "addresses")
_ISSUES = """
SELECT agency_id, entity, field, problem, values_flagged, records_flagged, records
FROM reconciled.data_quality_by_agency ORDER BY agency_id, entity, values_flagged DESC
"""
# Golden people holding two or more live records of the same agency: the agency's duplicates.
_DUPLICATES = """
SELECT agency_id, count(*) AS people, sum(records) AS records FROM (
    SELECT agency_id, person_id, count(*) AS records FROM reconciled.person_source
    WHERE NOT deleted GROUP BY agency_id, person_id HAVING count(*) > 1
) AS twice GROUP BY agency_id ORDER BY agency_id
"""


def _rows(connection: psycopg.Connection, query: str) -> list[dict[str, Any]]:
    with connection.cursor(row_factory=dict_row) as cursor:
        cursor.execute(query)
        return cursor.fetchall()


@dataclass
class QualityPage:
    sources: list[dict[str, Any]]
    completeness: list[dict[str, Any]]
    issues: list[dict[str, Any]]
    duplicates: list[dict[str, Any]]


def quality_page(connection: psycopg.Connection) -> QualityPage:
    return QualityPage(_rows(connection, _SOURCES), _rows(connection, _COMPLETENESS),
                       _rows(connection, _ISSUES), _rows(connection, _DUPLICATES))


@dataclass
class StatusPage:
    checked_at: datetime
    groups: list[GroupLag] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dead_letter_topics: dict[str, int] = field(default_factory=dict)  # topic -> retained
    dead_letter_reasons: dict[tuple[str, str], float] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)  # name -> "up" / sentence
    last_change: datetime | None = None  # newest change the analyst may see

    @property
    def newest_change_age(self) -> float | None:
        if self.last_change is None:
            return None
        return (self.checked_at - self.last_change).total_seconds()


def _metrics(port: int) -> str | None:
    try:
        response = httpx.get(f"http://{config.LOOPBACK}:{port}/metrics", timeout=1.0)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def dead_letters_by_reason(texts: list[str]) -> dict[tuple[str, str], float]:
    """(stage, reason) -> dead letters counted by the running processes since they started,
    from their Prometheus text (a pure function, for the unit tests)."""
    counted: dict[tuple[str, str], float] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                # by the sample's name: a text without its TYPE line names the family so
                if sample.name not in DEAD_LETTER_SAMPLES:
                    continue
                stage = sample.labels.get("stage", "sink")
                key = (stage, sample.labels.get("reason", "?"))
                counted[key] = counted.get(key, 0.0) + sample.value
    return counted


def status_page(pipeline: Pipeline, database_url: str,
                last_change: Callable[[], datetime | None]) -> StatusPage:
    page = StatusPage(checked_at=datetime.now(UTC))
    monitor = replace(pipeline.monitor, database_url=database_url)
    try:
        # Group discovery knows the `tip` root's topics only; under another root (tests,
        # staging) the pipeline's two groups are named.
        groups = ([] if pipeline.topics.root == ROOT else
                  [pipeline.topics.stream_group, pipeline.topics.sink_group])
        page.groups, page.warnings = survey_lag(monitor, groups=groups,
                                                prefix=pipeline.topics.root, samples=1)
        page.services["Kafka"] = "up"
    except OperationsError as error:
        page.services["Kafka"] = f"not answering: {error}"
    try:
        reader = OffsetReader(monitor, timeout_seconds=5.0)
        topics = [pipeline.topics.dlq(stage) for stage in DLQ_STAGES]
        partitions = reader.topic_partitions(topics)
        wanted = [(topic, number) for topic, numbers in partitions.items() for number in numbers]
        ends, starts = reader.end_offsets(wanted), reader.log_start_offsets(wanted)
        for topic in topics:
            page.dead_letter_topics[topic] = sum(
                ends.get((topic, number), 0) - starts.get((topic, number), 0)
                for number in partitions.get(topic, []))
    except OperationsError as error:
        page.warnings.append(f"dead-letter topics could not be read: {error}")
    members = {group.group: group.members for group in page.groups}
    texts = []
    stream_base, sink_port = config.stream_metrics_port(), config.sink_metrics_port()
    answering = 0
    others = {sink_port, config.operations_metrics_port()}
    for offset in range(STREAM_WORKER_PORTS if stream_base else 0):
        if stream_base is None or stream_base + offset in others:
            continue  # worker i serves on base + i; the sink's port may come next
        text = _metrics(stream_base + offset)
        if text is not None:
            texts.append(text)
            answering += 1
    stream_group, sink_group = pipeline.topics.stream_group, pipeline.topics.sink_group
    page.services["stream workers"] = (
        f"{_members(members, stream_group)} in group {stream_group};"
        f" {answering} answering on metrics ports from {stream_base}")
    sink = _metrics(sink_port) if sink_port else None
    page.services["sink"] = (
        f"{_members(members, sink_group)} in group {sink_group};"
        f" metrics port {sink_port} {'answering' if sink else 'not answering'}")
    if sink:
        texts.append(sink)
    page.dead_letter_reasons = dead_letters_by_reason(texts)
    page.last_change = last_change()
    page.services["PostgreSQL"] = "up"
    return page


def _members(members: dict[str, int], group: str) -> str:
    if group not in members:
        return "no offsets yet"
    count = members[group]
    return f"{count} member{'' if count == 1 else 's'} connected"


_LAST_CHANGE = "SELECT max(event_time) FROM reconciled.person_source"


def operations_routes(pipeline: Pipeline, database_url: str) -> Callable[..., list[Route]]:
    def routes(render: Callable[..., Response], authenticated: Callable[..., Any],
               locked: Callable[..., Any]) -> list[Route]:
        async def quality(request: Request, session: Session) -> Response:
            page = await run_in_threadpool(
                locked, session, lambda: quality_page(session.connection))
            return render(request, "quality.html", session=session, page=page,
                          fields=COMPLETENESS_FIELDS)

        async def status(request: Request, session: Session) -> Response:
            def last_change() -> datetime | None:
                row = locked(session, lambda: session.connection.execute(
                    _LAST_CHANGE).fetchone())
                return row[0] if row else None

            started = time.perf_counter()
            page = await run_in_threadpool(status_page, pipeline, database_url, last_change)
            return render(request, "status.html", session=session, page=page,
                          took=time.perf_counter() - started)

        return [Route("/quality", authenticated(quality), methods=["GET"]),
                Route("/status", authenticated(status), methods=["GET"])]
    return routes
