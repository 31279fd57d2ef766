"""Pairwise scoring: a Fellegi–Sunter match weight that explains itself field by field.

For every field both records have, the comparison falls into one *level* (exact, close,
different, ...). Each level has an m-probability (how often two records of the *same* person
land there: data-entry error rates) and a u-probability (how often two *different* people do:
how common the value is). The field's weight is ``log2(m / u)``; the record pair's score is the
sum. A field missing on either side weighs 0: absence is not evidence.

The default m and u below come from reasoning that holds for any agency's people records, not
from one data set: see docs/RESOLUTION.md for the derivation of each figure. They can be
replaced as a whole (``ScoringModel``), e.g. by an EM fit over candidate pairs; a model is a
fixed input, never updated record by record, so that the final clusters do not depend on the
order in which records arrived.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler
from rapidfuzz.fuzz import token_set_ratio

from streams.resolve.records import PersonFeatures

# field -> level -> (m, u)
Levels = dict[str, tuple[float, float]]

DEFAULT_LEVELS: dict[str, Levels] = {
    # Given names: ~1% of unrelated people share one (the commonest names are a few percent);
    # officers mistype or abbreviate about one record in seven.
    "given_name": {
        "exact": (0.86, 0.01),
        "close": (0.07, 0.004),   # Jaro-Winkler >= 0.92: a typo or a variant spelling
        "similar": (0.03, 0.03),  # Jaro-Winkler >= 0.80
        "different": (0.04, 0.956),
    },
    # Family names are rarer than given names, so agreeing on one says more.
    "family_name": {
        "exact": (0.86, 0.003),
        "close": (0.07, 0.002),
        "similar": (0.03, 0.02),
        "different": (0.04, 0.975),
    },
    "middle_name": {
        "exact": (0.7, 0.02),
        "initial": (0.2, 0.08),
        "different": (0.1, 0.9),
    },
    # Day-precision dates of birth spread over ~70 years x 365 days; one mistyped digit or a
    # day/month swap is the common error. Coarser precisions agree by chance far more often.
    "date_of_birth": {
        "exact": (0.85, 1e-4),
        "one_edit": (0.08, 1.5e-3),
        "same_month": (0.02, 1.2e-3),
        "same_year": (0.02, 0.014),
        "different": (0.03, 0.97),
    },
    "date_of_birth_month": {"exact": (0.9, 1.2e-3), "different": (0.1, 0.9988)},
    # A date of birth the agency mistyped into no date at all (1943-01-77, 1950-19-05): the
    # producer keeps its text, compared as a string with the other record's date (or text).
    # The same person's true date is usually one keystroke away from it; strangers land there
    # about as often as on a typed date's one-edit level (a few valid neighbours per text).
    # Weaker than an equal typed date by design: a text that is no date is an error already,
    # and two equal texts may be the same copied mistake or a shared placeholder.
    "date_of_birth_text": {
        "exact": (0.3, 2e-4),
        "one_edit": (0.6, 1.5e-3),  # one edit, transposition or day/month swap away
        "different": (0.1, 0.9983),
    },
    "date_of_birth_year": {"exact": (0.9, 0.014), "different": (0.1, 0.986)},
    "sex": {"exact": (0.96, 0.5), "different": (0.04, 0.5)},
    # A strong identifier is unique to a person; a typo in one digit still points at them.
    "identifier": {
        "exact": (0.95, 1e-6),
        "one_edit": (0.03, 1e-5),
        "different": (0.02, 0.99999),
    },
    # People change phones and mailboxes; sharing one is rare among strangers.
    "phone": {"shared": (0.6, 1e-5), "different": (0.4, 0.99999)},
    "email": {"shared": (0.6, 1e-6), "different": (0.4, 0.999999)},
    # Households share addresses, people move, shelters give their own address. The numbers
    # of an address (house number, postal code) are compared apart from its words: they are
    # what tells two streets' neighbours apart, and typos rarely hit both.
    "address_numbers": {
        "exact": (0.6, 2e-4),
        "overlap": (0.25, 0.05),
        "different": (0.15, 0.9498),
    },
    "address": {
        "exact": (0.5, 1e-4),
        "close": (0.2, 5e-4),     # token set ratio >= 90
        "similar": (0.1, 0.01),   # token set ratio >= 70
        "different": (0.2, 0.9894),
    },
    "parish": {"exact": (0.85, 0.1), "different": (0.15, 0.9)},
    "citizenship": {"shared": (0.95, 0.5), "different": (0.05, 0.5)},
}

# A match weight of 20 is a Bayes factor of about a million: enough for the record to be
# more likely the same person than not among a national population of that order.
DEFAULT_MATCH_THRESHOLD = 20.0
# Pairs between review and match are recorded for human review, never merged automatically.
DEFAULT_REVIEW_THRESHOLD = 12.0


@dataclass(frozen=True)
class ScoringModel:
    """m and u per field and level, and the thresholds that turn a score into a decision."""

    levels: Mapping[str, Levels] = field(default_factory=lambda: DEFAULT_LEVELS)
    match_threshold: float = DEFAULT_MATCH_THRESHOLD
    review_threshold: float = DEFAULT_REVIEW_THRESHOLD
    names_ceiling: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        weights = {
            name: {level: math.log2(m / u) for level, (m, u) in levels.items()}
            for name, levels in self.levels.items()
        }
        object.__setattr__(self, "_weights", weights)
        # The most the names can add to a pair's weight (a missing part adds 0).
        ceiling = sum(
            max(0.0, *weights[name].values())
            for name in ("given_name", "family_name") if name in weights
        )
        object.__setattr__(self, "names_ceiling", ceiling)

    def weight(self, field_name: str, level: str) -> float:
        return self._weights[field_name][level]  # type: ignore[attr-defined,no-any-return]

    def total(self, levels: Mapping[str, str]) -> float:
        """The match weight of a pair's levels: the sum of their weights, in their order."""
        weights = self._weights  # type: ignore[attr-defined]
        return round(sum([weights[name][level] for name, level in levels.items()]), 6)

    def decision(self, score: float) -> str:
        if score >= self.match_threshold:
            return "MATCH"
        if score >= self.review_threshold:
            return "REVIEW"
        return "NON_MATCH"


@dataclass(frozen=True)
class PairScore:
    """The score of one pair and the per-field weights that make it up."""

    score: float
    features: dict[str, float]
    rule: str


def _name_level(left: str, right: str) -> str:
    if left == right:
        return "exact"
    similarity = JaroWinkler.similarity(left, right)
    if similarity >= 0.92:
        return "close"
    if similarity >= 0.80:
        return "similar"
    return "different"


_NAME_RANK = {"exact": 3, "close": 2, "similar": 1, "different": 0, "": 0}


def _name_pair_levels(left: tuple[str, str], right: tuple[str, str]) -> tuple[str, str]:
    """(given level, family level) of one reading; "" where either side lacks the part."""
    given = _name_level(left[0], right[0]) if left[0] and right[0] else ""
    family = _name_level(left[1], right[1]) if left[1] and right[1] else ""
    return given, family


def _names(a: PersonFeatures, b: PersonFeatures) -> tuple[str, str]:
    """The best-agreeing reading of the two people's names, the same either way round.

    Besides the primary names this tries each alias and the given/family swap (a frequent
    form-filling error); the levels of the best reading count, once. The primary reading wins
    a tie; among the others, the one agreeing better on the family name (the stronger
    evidence), a swapped reading counting in either orientation. Without that, a swap scored
    a.given/b.family as the given name one way round and as the family name the other, and
    a resolver's edge took the score of whichever record came last.
    """
    primary_a = (a.given_canonical, a.family)
    primary_b = (b.given_canonical, b.family)
    best = _name_pair_levels(primary_a, primary_b)
    if best == ("exact", "exact"):
        return best
    swapped = _name_pair_levels(primary_a, (b.family, b.given_canonical))
    others = [swapped, (swapped[1], swapped[0])]
    readings_a = (primary_a, *a.alias_names)
    readings_b = (primary_b, *b.alias_names)
    if len(readings_a) > 1 or len(readings_b) > 1:
        others.extend(_name_pair_levels(x, y) for x in readings_a for y in readings_b)
    other = max(others, key=_agreement)
    return other if _agreement(other)[0] > _agreement(best)[0] else best


def _agreement(levels: tuple[str, str]) -> tuple[int, int, tuple[str, str]]:
    """How well a reading's (given, family) levels agree: in total, on the family name, then
    the levels themselves (so that equal readings found in another order tie the same way)."""
    given, family = _NAME_RANK[levels[0]], _NAME_RANK[levels[1]]
    return given + family, family, levels


def _date_of_birth(left: str, right: str) -> tuple[str, str]:
    """(field, level): a date known only to the year or month is a different, weaker field."""
    common = min(len(left), len(right))
    left, right = left[:common], right[:common]
    if common == 4:
        return "date_of_birth_year", "exact" if left == right else "different"
    if common == 6:
        return "date_of_birth_month", "exact" if left == right else "different"
    if left == right:
        level = "exact"
    elif (
        DamerauLevenshtein.distance(left, right) == 1
        or (left[:4] == right[:4] and left[4:6] == right[6:8] and left[6:8] == right[4:6])
    ):
        level = "one_edit"
    elif left[:6] == right[:6]:
        level = "same_month"
    elif left[:4] == right[:4]:
        level = "same_year"
    else:
        level = "different"
    return "date_of_birth", level


def _date_of_birth_text(left: str, right: str) -> tuple[str, str]:
    """(field, level) when one side (or both) has only the text of an invalid date.

    Two full dates' digits (a text, or a day-precision date) are compared as strings: equal,
    one edit or a day/month swap away, or different. Against a date known only to the month
    or year, the text's known part is compared as a date of that precision would be."""
    if len(left) != 8 or len(right) != 8:
        return _date_of_birth(left, right)
    if left == right:
        return "date_of_birth_text", "exact"
    if DamerauLevenshtein.distance(left, right) == 1 or (
        left[:4] == right[:4] and left[4:6] == right[6:8] and left[6:8] == right[4:6]
    ):
        return "date_of_birth_text", "one_edit"
    return "date_of_birth_text", "different"


def _identifier_level(left: frozenset[str], right: frozenset[str]) -> str:
    if left & right:
        return "exact"
    for x in left:
        for y in right:
            if len(x) == len(y) and DamerauLevenshtein.distance(x, y) <= 1:
                return "one_edit"
    return "different"


def _address_level(left: str, right: str) -> str:
    if left == right:
        return "exact"
    ratio = token_set_ratio(left, right)
    if ratio >= 90:
        return "close"
    if ratio >= 70:
        return "similar"
    return "different"


def comparison_levels(a: PersonFeatures, b: PersonFeatures) -> dict[str, str]:
    """The level of every field both records have (the input of scoring and of EM)."""
    levels: dict[str, str] = {}
    _name_levels(a, b, levels)
    _other_levels(a, b, levels)
    return levels


def _name_levels(a: PersonFeatures, b: PersonFeatures, levels: dict[str, str]) -> None:
    if (a.given or a.family) and (b.given or b.family):
        given, family = _names(a, b)
        if given:
            levels["given_name"] = given
        if family:
            levels["family_name"] = family


def _other_levels(a: PersonFeatures, b: PersonFeatures, levels: dict[str, str]) -> None:
    """Every field but the names, in the order ``comparison_levels`` lists them."""
    if a.middle and b.middle:
        if a.middle == b.middle:
            levels["middle_name"] = "exact"
        elif a.middle[0] == b.middle[0] and (len(a.middle) == 1 or len(b.middle) == 1):
            levels["middle_name"] = "initial"
        else:
            levels["middle_name"] = "different"
    if a.date_of_birth and b.date_of_birth:
        name, level = _date_of_birth(a.date_of_birth, b.date_of_birth)
        levels[name] = level
    elif a.date_of_birth_text or b.date_of_birth_text:
        left = a.date_of_birth or a.date_of_birth_text
        right = b.date_of_birth or b.date_of_birth_text
        if left and right:
            name, level = _date_of_birth_text(left, right)
            levels[name] = level
    if a.sex and b.sex:
        levels["sex"] = "exact" if a.sex == b.sex else "different"
    shared_schemes = a.identifiers.keys() & b.identifiers.keys()
    if shared_schemes:
        # The best-agreeing scheme counts: two schemes agreeing say no more than one does.
        found = {_identifier_level(a.identifiers[s], b.identifiers[s]) for s in shared_schemes}
        levels["identifier"] = next(
            level for level in ("exact", "one_edit", "different") if level in found
        )
    if a.phones and b.phones:
        levels["phone"] = "shared" if a.phones & b.phones else "different"
    if a.emails and b.emails:
        levels["email"] = "shared" if a.emails & b.emails else "different"
    if a.address_numbers and b.address_numbers:
        if a.address_numbers == b.address_numbers:
            levels["address_numbers"] = "exact"
        elif a.address_numbers & b.address_numbers:
            levels["address_numbers"] = "overlap"
        else:
            levels["address_numbers"] = "different"
    if a.address_words and b.address_words:
        levels["address"] = _address_level(a.address_words, b.address_words)
    elif a.parish and b.parish:
        levels["parish"] = "exact" if a.parish == b.parish else "different"
    if a.citizenship and b.citizenship:
        levels["citizenship"] = "shared" if a.citizenship & b.citizenship else "different"


def score_pair(model: ScoringModel, a: PersonFeatures, b: PersonFeatures) -> PairScore:
    """Compare two source records field by field; symmetric in its two arguments."""
    levels = comparison_levels(a, b)
    features = {name: model.weight(name, level) for name, level in levels.items()}
    rule = "fellegi_sunter:identifier" if levels.get("identifier") == "exact" else "fellegi_sunter"
    return PairScore(score=model.total(levels), features=features, rule=rule)


def match_weight(model: ScoringModel, a: PersonFeatures, b: PersonFeatures) -> float:
    """``score_pair(model, a, b).score`` without the per-field explanation."""
    return model.total(comparison_levels(a, b))


# Below the bound by more than rounding to 6 decimals and summing in another order can move it.
_BOUND_MARGIN = 1e-6


def match_weight_reaching(
    model: ScoringModel, a: PersonFeatures, b: PersonFeatures, floor: float
) -> float | None:
    """``match_weight`` when the pair can reach ``floor``, else None.

    Most candidate pairs are strangers sharing one weak blocking key. Every field but the
    names is cheap to compare (set lookups, one C call for the address); when those fields
    plus the best the names could add stay below ``floor``, the names (the costliest part:
    aliases, swaps, string similarities) are not compared at all. Exact: a pair that could
    reach ``floor`` gets its full score, the same number ``score_pair`` gives.
    """
    others: dict[str, str] = {}
    _other_levels(a, b, others)
    bound = model.total(others)
    if (a.given or a.family) and (b.given or b.family):
        bound += model.names_ceiling
    if bound < floor - _BOUND_MARGIN:
        return None
    levels: dict[str, str] = {}
    _name_levels(a, b, levels)
    levels.update(others)  # the names first, as comparison_levels orders them
    return model.total(levels)


# Features compared on their own, each to one field: shared with the other record or not.
# An update that changes only these (a new e-mail address, a phone) moves each pair's weight
# by their levels alone, so a pair that was below a floor stays there when none of them gains.
_SET_FIELDS = {"phones": "phone", "emails": "email", "citizenship": "citizenship"}
_FEATURE_FIELDS = tuple(name for name in PersonFeatures.__slots__ if name != "key")


def set_field_changes(old: PersonFeatures, new: PersonFeatures) -> tuple[str, ...] | None:
    """The set-valued features (``_SET_FIELDS``) that differ between two versions of one
    record; None when any other feature differs too (the pairs must be scored again)."""
    changed = []
    for name in _FEATURE_FIELDS:
        if getattr(old, name) != getattr(new, name):
            if name not in _SET_FIELDS:
                return None
            changed.append(name)
    return tuple(changed)


def _set_level(left: frozenset[str], right: frozenset[str]) -> str | None:
    if not (left and right):
        return None  # missing on either side: not compared, weighs 0
    return "shared" if left & right else "different"


def set_level_shift(model: ScoringModel, old: PersonFeatures, new: PersonFeatures,
                    other: PersonFeatures, changed: tuple[str, ...]) -> int:
    """How the weight of (new, other) stands to that of (old, other), ``new`` differing from
    ``old`` only in ``changed`` (``set_field_changes``): 0 when every changed field keeps its
    level (the same levels: the same weight, to the bit), -1 when each level that moves
    weighs less than before by more than the rounding margin (the weight, and the bound that
    may have pruned the pair, can only fall: every other level is the same and summed in the
    same order), 1 when it may rise (score the pair)."""
    shift = 0
    for name in changed:
        theirs = getattr(other, name)
        before = _set_level(getattr(old, name), theirs)
        after = _set_level(getattr(new, name), theirs)
        if before == after:
            continue
        field_name = _SET_FIELDS[name]
        weight_before = 0.0 if before is None else model.weight(field_name, before)
        weight_after = 0.0 if after is None else model.weight(field_name, after)
        if weight_after > weight_before - _BOUND_MARGIN:
            return 1
        shift = -1
    return shift
