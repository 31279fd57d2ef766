"""What ``tipsync bench faults`` says of a lost record: where its events lie on the agency
topics, and the pipeline's log lines about those partitions, printed before the stack and its
logs are wiped (a CI run that lost records left nothing else to read)."""

from __future__ import annotations

from pathlib import Path

from deploy.bench.faults import log_excerpt
from deploy.bench.faults_count import Published, compare, where

TOPIC = "tip.agency.customs.person"


def _published() -> Published:
    latest = {"person": {("customs", "p-1"): (1, True), ("customs", "p-2"): (2, True)}}
    places = {"person": {("customs", "p-1"): [(TOPIC, 3, 17)],
                         ("customs", "p-2"): [(TOPIC, 0, 4), (TOPIC, 0, 9)]}}
    return Published(latest, [], events=3, dead_letters=0, not_on_resolve_topic=1,
                     places=places)


def test_a_lost_record_is_named_by_where_its_events_lie():
    stored = {"person": {("customs", "p-2"): (2, True)}}  # p-1 never reached the store
    figures = compare(_published(), stored, set(), set())
    assert figures["lost"] == 1
    assert figures["lost_at"] == [f"{TOPIC}[3]@17"]
    # a record stored at an older version than published is lost too
    figures = compare(_published(), {"person": {("customs", "p-2"): (1, True),
                                                ("customs", "p-1"): (1, True)}}, set(), set())
    assert figures["lost_at"] == [f"{TOPIC}[0]@4,9"]


def test_where_groups_offsets_by_partition():
    assert where([(TOPIC, 1, 5), (TOPIC, 2, 7), (TOPIC, 1, 6)]) == (
        f"{TOPIC}[1]@5,6 {TOPIC}[2]@7")
    assert where([]) == "(no event)"


def test_the_excerpt_keeps_the_lines_about_the_lost_partitions_and_the_guards(tmp_path: Path):
    (tmp_path / "stream.log").write_text(
        f"[w] ingest: 2 message(s) of {TOPIC}[3] from offset 15 not handed by faust before "
        "offset 18; processing them first\n"
        "[w] Unable connect to node with id 1\n"
        "[w] tip.agency.police-ctu.case[0]: messages from offset 2 to 4 were never handed by "
        "faust and the partition is not committed past them; reading them again\n"
        f"[w] something else about {TOPIC}[30]\n"
    )
    excerpt = log_excerpt(tmp_path, [f"{TOPIC}[3]@17"])
    lines = excerpt.splitlines()
    assert lines[0].startswith(f"the pipeline's log lines about the lost records' partitions "
                               f"({TOPIC}[3])")
    assert len(lines) == 3  # the partition's line and the guard's, not the noise nor [30]
    assert "from offset 15 not handed" in lines[1] and "police-ctu.case[0]" in lines[2]
    assert log_excerpt(tmp_path / "absent", []).endswith("(none) and the stream's input guards:")
