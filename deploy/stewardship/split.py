"""``tipsync review split GOLDEN_ID``: a golden person's source records, and the cannot-links
that would take each of them out.

A wrong merge is undone with cannot-links (``tipsync review decide --different``): the
resolver then keeps the two records in different clusters, and a cannot-link wins over any
chain of automatic links (docs/RESOLUTION.md "Steward decisions"). To take one record out of
a golden person, the steward separates it from each of the others; to split the person in two
groups, from each record of the other group. This module lists the sources from the reconciled
store (a merged-away id is followed to its survivor), with the latest match decision between
each pair, and prints the exact commands; the steward runs the ones that say what is true.
It reads on the steward's own connection: only the sources their clearance covers, and the
person recorded in the read audit (path ``review_split``, migration 0012).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

_SOURCES = """
SELECT s.agency_id || ':' || s.source_record_id AS key, s.source_version, s.event_time,
       reconciled.record_person_read('review_split',
                                     ARRAY[reconciled.resolve_person_id(s.person_id)])
           AS read_recorded
FROM reconciled.person_source AS s
WHERE reconciled.resolve_person_id(s.person_id) = reconciled.resolve_person_id(%s)
  AND NOT s.deleted
ORDER BY s.agency_id COLLATE "C", s.source_record_id COLLATE "C"
"""

_PAIRS = """
SELECT DISTINCT ON (least(l_key COLLATE "C", r_key COLLATE "C"),
                    greatest(l_key COLLATE "C", r_key COLLATE "C"))
       least(l_key COLLATE "C", r_key COLLATE "C") AS a_key,
       greatest(l_key COLLATE "C", r_key COLLATE "C") AS b_key, score, decision, rule
FROM (SELECT d.*, d.left_agency_id || ':' || d.left_source_record_id AS l_key,
             d.right_agency_id || ':' || d.right_source_record_id AS r_key
      FROM reconciled.match_decision AS d) AS keyed
WHERE l_key = ANY(%s) AND r_key = ANY(%s)
ORDER BY least(l_key COLLATE "C", r_key COLLATE "C"),
         greatest(l_key COLLATE "C", r_key COLLATE "C"), decided_at DESC
"""


@dataclass
class GoldenSources:
    golden_id: str
    survivor: str | None  # the live golden id (None: not in the store)
    sources: list[dict[str, Any]] = field(default_factory=list)
    pairs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"golden_id": self.golden_id, "survivor": self.survivor,
                "sources": self.sources,
                "pairs": [{"a_key": a, "b_key": b, **evidence}
                          for (a, b), evidence in sorted(self.pairs.items())],
                "commands": split_commands([s["key"] for s in self.sources])}


def golden_sources(connection: psycopg.Connection, golden_id: str) -> GoldenSources:
    """The live source records of a golden person (``golden_id`` may be merged away)."""
    with connection.cursor(row_factory=dict_row) as cursor:
        cursor.execute("SELECT reconciled.resolve_person_id(%s::uuid) AS survivor",
                       (golden_id,))
        found = cursor.fetchone()
        survivor = str(found["survivor"]) if found and found["survivor"] else None
        cursor.execute(_SOURCES, (golden_id,))
        sources = cursor.fetchall()
        for source in sources:
            source.pop("read_recorded")
        keys = [row["key"] for row in sources]
        cursor.execute(_PAIRS, (keys, keys))
        pairs = {(row.pop("a_key"), row.pop("b_key")): row for row in cursor.fetchall()}
    return GoldenSources(golden_id, survivor, sources, pairs)


def split_commands(keys: list[str]) -> dict[str, list[str]]:
    """For each source key, the commands that take it out of the others' golden person (run
    with the steward's login: ``--connection FILE`` or the variable)."""
    return {
        key: [
            f"tipsync review decide --different {shlex.quote(key)} {shlex.quote(other)} "
            f"--reason {shlex.quote('WHY THEY DIFFER')}"
            for other in keys if other != key
        ]
        for key in keys
    }


def format_split(found: GoldenSources) -> str:
    if found.survivor is None or not found.sources:
        return (f"golden person {found.golden_id} is not in the reconciled store (or has no "
                "live source record); check the id with `tipsync analyst` or wait for the sink")
    lines = [f"golden person {found.survivor}"
             + (f" (the id {found.golden_id} was merged into it)"
                if found.survivor != found.golden_id else "")
             + f": {len(found.sources)} source record(s)"]
    for source in found.sources:
        lines.append(f"  {source['key']}  version {source['source_version']}  "
                     f"changed {source['event_time']}")
    if found.pairs:
        lines.append("match decisions between them (latest):")
        for (a_key, b_key), evidence in sorted(found.pairs.items()):
            lines.append(f"  {a_key} ~ {b_key}: {evidence['decision']} score "
                         f"{float(evidence['score']):.1f} ({evidence['rule']})")
    if len(found.sources) < 2:
        lines.append("one record: nothing to split")
        return "\n".join(lines)
    lines.append("to take a record out, separate it from each of the others "
                 "(replace the reason; your login names you as the steward):")
    for key, commands in split_commands([s["key"] for s in found.sources]).items():
        lines.append(f"  # {key} out:")
        lines.extend(f"  {command}" for command in commands)
    return "\n".join(lines)
