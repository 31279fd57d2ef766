"""Entity resolution for people: pure functions and an incremental ``Resolver``.

No Kafka and no faust here: the stream app feeds records in and publishes the changes out.
"""

from streams.resolve.changes import (
    Change,
    GoldenPersonMerged,
    GoldenPersonRemoved,
    GoldenPersonUpserted,
    MatchDecision,
    SourceMapped,
)
from streams.resolve.clustering import ChainingGuard
from streams.resolve.records import InvalidPersonRecord, source_key
from streams.resolve.resolver import Resolver
from streams.resolve.scoring import PairScore, ScoringModel
from streams.resolve.survivorship import TrustRanks, golden_id

__all__ = [
    "ChainingGuard",
    "Change",
    "GoldenPersonMerged",
    "GoldenPersonRemoved",
    "GoldenPersonUpserted",
    "InvalidPersonRecord",
    "MatchDecision",
    "PairScore",
    "Resolver",
    "ScoringModel",
    "SourceMapped",
    "TrustRanks",
    "golden_id",
    "source_key",
]
