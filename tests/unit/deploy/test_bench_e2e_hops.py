"""bench e2e's hops: each steady change's time in ingest and in resolve, from the topics'
timestamps (deploy/bench/e2e_hops.py). Pure: no Kafka."""

from __future__ import annotations

from deploy.bench.e2e_hops import hops, next_hop, summary


def test_each_change_is_paired_with_the_first_later_message_of_its_record():
    assert next_hop([100, 200, 300], [150, 260]) == [150, 260, None]
    assert next_hop([100], []) == [None]


def test_the_hops_of_two_records_with_a_change_that_never_reached_the_mapping():
    agency = {b"police-ctu:P-1": [1_000, 2_000], b"police-ctu:P-2": [1_500]}
    resolve = {b"person:police-ctu:P-1": [1_100, 2_400], b"person:police-ctu:P-2": [1_900]}
    mapping = {b"police-ctu:P-1": [1_300]}  # P-1's second change and P-2's: not yet
    assert hops(agency, resolve, mapping) == {"ingest": [100], "resolve": [200]}
    mapping[b"police-ctu:P-1"].append(3_000)
    mapping[b"police-ctu:P-2"] = [1_950]
    assert hops(agency, resolve, mapping) == {"ingest": [100, 400, 400],
                                              "resolve": [200, 600, 50]}


def test_the_summary_is_in_seconds():
    def percentile(values: list[float], rank: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(rank / 100 * len(ordered)))]

    found = summary([100, 200, 300, 4_000], percentile)
    assert found["count"] == 4 and found["max_seconds"] == 4.0
    assert found["p50_seconds"] == 0.3
    assert summary([], percentile) == {"count": 0}
