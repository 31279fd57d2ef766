"""Fitting the scoring model to the records held, without labels (Fellegi–Sunter EM).

- u-probabilities from random pairs: two records drawn at random are almost never the same
  person, so how often they land on each level *is* how often strangers agree.
- m-probabilities and the share of matches by expectation maximisation over the blocked
  candidate pairs, starting from the reasoned defaults (which also serve as a weak prior, so
  a level the data never shows keeps a sensible weight).
- the match threshold from the estimated number of true matches: a pair is a match when its
  posterior probability passes one half given the prior odds of two random records matching.

A fitted model is a fixed input to the ``Resolver``. Refitting is an operation (on the held
records, e.g. nightly), and a new model re-resolves the held records; the model never drifts
record by record, which would make clusters depend on arrival order.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from streams.resolve.blocking import DEFAULT_BLOCK_SIZE_CAP, blocking_keys, cap_for
from streams.resolve.records import PersonFeatures
from streams.resolve.scoring import DEFAULT_LEVELS, Levels, ScoringModel, comparison_levels

# How many pairs' worth of belief the reasoned defaults carry against the data.
PRIOR_STRENGTH = 1.0
# Below this many random pairs with a field on both sides, its u stays the reasoned one.
MINIMUM_U_OBSERVATIONS = 200
# Below review, a pair is not even worth showing a person; review sits this far below match.
REVIEW_MARGIN = 6.0


@dataclass(frozen=True)
class FitReport:
    records: int
    candidate_pairs: int
    random_pairs: int
    iterations: int
    matching_share_of_candidates: float
    expected_matches: float
    match_threshold: float


# EM sessions, as Splink runs them: the pairs that share a key of one kind agree on its
# fields by construction, so those fields say nothing there and are left out of that
# session; each field's m comes from the sessions that did not block on it.
SESSIONS: dict[str, frozenset[str]] = {
    "dob": frozenset({"date_of_birth", "date_of_birth_month", "date_of_birth_year"}),
    "names": frozenset({"given_name", "family_name"}),
}


def pairs_by_key_kind(
    features: Sequence[PersonFeatures], block_size_cap: int = DEFAULT_BLOCK_SIZE_CAP
) -> dict[str, set[tuple[int, int]]]:
    """Index pairs that share a blocking key within the cap, per key kind (``dob``, ...)."""
    blocks: dict[str, list[int]] = {}
    for index, record in enumerate(features):
        for key in blocking_keys(record):
            blocks.setdefault(key, []).append(index)
    pairs: dict[str, set[tuple[int, int]]] = {}
    for key, members in blocks.items():
        if 1 < len(members) <= cap_for(key, block_size_cap):
            kind = pairs.setdefault(key.split(":", 1)[0], set())
            for i, left in enumerate(members):
                kind.update((left, right) for right in members[i + 1:])
    return pairs


def _patterns(
    features: Sequence[PersonFeatures], pairs: Iterable[tuple[int, int]],
    leave_out: frozenset[str],
) -> Counter[tuple[tuple[str, str], ...]]:
    """Pairs grouped by their comparison levels: EM then iterates over distinct patterns."""
    counts: Counter[tuple[tuple[str, str], ...]] = Counter()
    for left, right in pairs:
        levels = comparison_levels(features[left], features[right])
        counts[tuple(sorted(item for item in levels.items() if item[0] not in leave_out))] += 1
    return counts


def _expectation_maximisation(
    patterns: Counter[tuple[tuple[str, str], ...]],
    m: dict[str, dict[str, float]],
    u: dict[str, dict[str, float]],
    prior_levels: dict[str, Levels],
    iterations: int,
) -> tuple[dict[str, dict[str, float]], float, int]:
    """m per field seen in the patterns, the share of matches, the iterations run."""
    share = 0.1
    m = {field: dict(levels) for field, levels in m.items()}
    iteration = 0
    for iteration in range(1, iterations + 1):  # noqa: B007 - returned after the loop
        totals: dict[str, dict[str, float]] = {}
        matched = 0.0
        for pattern, count in patterns.items():
            log_odds = math.log2(share / (1 - share)) + sum(
                math.log2(m[field][level] / u[field][level]) for field, level in pattern
            )
            weight = count / (1 + 2 ** (-max(min(log_odds, 60), -60)))
            matched += weight
            for field, level in pattern:
                by_level = totals.setdefault(field, {})
                by_level[level] = by_level.get(level, 0.0) + weight
        new_share = min(max(matched / sum(patterns.values()), 1e-6), 1 - 1e-6)
        for field, observed in totals.items():
            total = sum(observed.values())
            m[field] = {
                level: (observed.get(level, 0.0) + PRIOR_STRENGTH * prior_m)
                / (total + PRIOR_STRENGTH)
                for level, (prior_m, _) in prior_levels[field].items()
            }
        converged = abs(new_share - share) < 1e-7
        share = new_share
        if converged:
            break
    return m, share, iteration


def estimate_u(
    features: Sequence[PersonFeatures], sample_pairs: int, seed: int,
    prior: dict[str, Levels],
) -> dict[str, dict[str, float]]:
    generator = random.Random(seed)
    size = len(features)
    counts: dict[str, Counter[str]] = {}
    for _ in range(sample_pairs):
        left, right = generator.randrange(size), generator.randrange(size)
        if left == right:
            continue
        for field, level in comparison_levels(features[left], features[right]).items():
            counts.setdefault(field, Counter())[level] += 1
    u: dict[str, dict[str, float]] = {}
    for field, levels in prior.items():
        observed = counts.get(field, Counter())
        total = sum(observed.values())
        if total < MINIMUM_U_OBSERVATIONS:
            u[field] = {level: prior_u for level, (_, prior_u) in levels.items()}
            continue
        # Half a pair per level keeps an unseen agreement level finite, and small.
        u[field] = {
            level: (observed[level] + 0.5) / (total + 0.5 * len(levels)) for level in levels
        }
    return u


def fit_scoring_model(
    features: Sequence[PersonFeatures],
    *,
    prior: ScoringModel | None = None,
    random_pairs: int = 300_000,
    iterations: int = 30,
    block_size_cap: int = DEFAULT_BLOCK_SIZE_CAP,
    seed: int = 0,
) -> tuple[ScoringModel, FitReport]:
    """An unsupervised model for these records; see the module docstring."""
    prior = prior or ScoringModel()
    prior_levels = {field: dict(levels) for field, levels in prior.levels.items()}
    if len(features) < 2:
        raise ValueError(
            f"fitting needs at least two records, got {len(features)}; keep the default model "
            "until records have arrived"
        )
    u = estimate_u(features, random_pairs, seed, prior_levels)
    by_kind = pairs_by_key_kind(features, block_size_cap)
    prior_m = {field: {level: m for level, (m, _) in levels.items()}
               for field, levels in prior_levels.items()}
    estimates: dict[str, list[dict[str, float]]] = {}
    shares: dict[str, float] = {}
    iterations_run = 0
    for kind, leave_out in SESSIONS.items():
        patterns = _patterns(features, by_kind.get(kind, set()), leave_out)
        if not patterns:
            continue
        fitted, shares[kind], ran = _expectation_maximisation(
            patterns, prior_m, u, prior_levels, iterations
        )
        iterations_run = max(iterations_run, ran)
        for field in {field for pattern in patterns for field, _ in pattern}:
            estimates.setdefault(field, []).append(fitted[field])
    m = {
        field: {
            level: sum(estimate[level] for estimate in estimates[field]) / len(estimates[field])
            for level in levels
        } if field in estimates else dict(prior_m[field])
        for field, levels in prior_levels.items()
    }
    # Matches that share a date of birth, divided by the share of matches that do, is how
    # many matches there are in all.
    dob_pairs = len(by_kind.get("dob", ()))
    expected_matches = shares.get("dob", 0.0) * dob_pairs / max(m["date_of_birth"]["exact"], 1e-3)
    all_candidates = set().union(*by_kind.values()) if by_kind else set()
    share = expected_matches / max(len(all_candidates), 1)
    pairs = all_candidates
    iteration = iterations_run
    all_pairs = len(features) * (len(features) - 1) / 2
    random_match = min(max(expected_matches / all_pairs, 1e-12), 0.5)
    threshold = math.log2((1 - random_match) / random_match)
    levels = {
        field: {level: (m[field][level], u[field][level]) for level in prior_levels[field]}
        for field in prior_levels
    }
    model = ScoringModel(
        levels=levels, match_threshold=round(threshold, 3),
        review_threshold=round(threshold - REVIEW_MARGIN, 3),
    )
    report = FitReport(
        records=len(features), candidate_pairs=len(pairs), random_pairs=random_pairs,
        iterations=iteration, matching_share_of_candidates=share,
        expected_matches=expected_matches, match_threshold=threshold,
    )
    return model, report


__all__ = ["DEFAULT_LEVELS", "FitReport", "fit_scoring_model", "pairs_by_key_kind"]
