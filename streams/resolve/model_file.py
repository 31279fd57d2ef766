"""A scoring model as a file: what ``tipsync model fit`` writes and ``tipsync stream --model``
reads.

The file is JSON and holds only probabilities and counts, never a record or a name:

::

    {
      "format": "tipsync.scoring-model",
      "version": 2,
      "match_threshold": 13.42,
      "review_threshold": 7.42,
      "levels": {"given_name": {"exact": {"m": 0.93, "u": 0.011}, ...}, ...},
      "fitted": {"records": 10000, "candidate_pairs": 48210, "random_pairs": 300000,
                 "expected_matches": 5012.3, "iterations": 12,
                 "fitted_at": "2026-11-30T04:10:00+00:00"}
    }

``fitted`` is null for the reasoned default weights. Every field and level the scorer knows
must be there (a missing level would make a pair's comparison unscoreable in the middle of
the stream), and nothing else (an unknown name is a typo or a model of another version).

The *fingerprint* is a hash of what decides a pair's score and decision (thresholds, m and u),
not of how or when the model was fitted: two fits that give the same weights are one model,
and switching between them re-resolves nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.resolve.scoring import DEFAULT_LEVELS, Levels, ScoringModel

FORMAT = "tipsync.scoring-model"
# Version 2 added the field date_of_birth_text (the text of an invalid date of birth). A
# version 1 document (a file, or the model recorded on tip.internal.resolve-model) is still
# read: it gets that field's reasoned default levels.
VERSION = 2
READABLE_VERSIONS = (1, 2)
_ADDED_IN_VERSION_2 = ("date_of_birth_text",)
_FITTED_FIELDS = ("records", "candidate_pairs", "random_pairs", "expected_matches",
                  "iterations", "fitted_at")


class ModelFileError(ValueError):
    """A model file (or a recorded model) that cannot be used; the message says why and how to
    fix it."""


@dataclass(frozen=True)
class Fitted:
    """How a model was fitted: on how many records and pairs, and when."""

    records: int
    candidate_pairs: int
    random_pairs: int
    expected_matches: float
    iterations: int
    fitted_at: str  # ISO 8601, UTC


@dataclass(frozen=True)
class ModelFile:
    """A scoring model with its provenance and fingerprint."""

    model: ScoringModel
    fitted: Fitted | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.model)

    def to_document(self) -> dict[str, Any]:
        return model_document(self.model, self.fitted)


DEFAULT_MODEL_FILE = ModelFile(ScoringModel())


def _scoring_content(model: ScoringModel) -> dict[str, Any]:
    return {
        "match_threshold": model.match_threshold,
        "review_threshold": model.review_threshold,
        "levels": {
            field: {level: {"m": m, "u": u} for level, (m, u) in levels.items()}
            for field, levels in model.levels.items()
        },
    }


def fingerprint(model: ScoringModel) -> str:
    """sha256 (hex, first 16 characters) of the model's canonical scoring content."""
    canonical = json.dumps(_scoring_content(model), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def model_document(model: ScoringModel, fitted: Fitted | None = None) -> dict[str, Any]:
    """The JSON-safe document of a model (the file's content, and what the stream records)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        **_scoring_content(model),
        "fitted": None if fitted is None else {
            name: getattr(fitted, name) for name in _FITTED_FIELDS
        },
    }


def dumps(model_file: ModelFile) -> str:
    return json.dumps(model_file.to_document(), indent=2, sort_keys=False) + "\n"


def write_model_file(path: Path, model_file: ModelFile) -> None:
    """Write the file whole or not at all (a half-written model must never be read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(dumps(model_file), encoding="utf-8")
    partial.replace(path)


def read_model_file(path: Path) -> ModelFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ModelFileError(
            f"model file {path}: cannot be read ({error.strerror or error}); give the path of "
            "a file written by `tipsync model fit --out`"
        ) from None
    return loads(text, str(path))


def loads(text: str, source: str) -> ModelFile:
    """Parse and check a model document; ``source`` names it in errors (a path, a topic)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelFileError(
            f"model file {source}: is not JSON ({error.msg} at line {error.lineno}); write it "
            "again with `tipsync model fit --out`"
        ) from None
    return from_document(document, source)


def from_document(document: Any, source: str) -> ModelFile:
    """A ``ModelFile`` from a parsed document, every field checked (see module docstring)."""

    def refuse(problem: str, fix: str) -> ModelFileError:
        return ModelFileError(f"model file {source}: {problem}; {fix}")

    if not isinstance(document, Mapping) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, Mapping) else type(document)
        raise refuse(f"format is {found!r}, not {FORMAT!r}",
                     "give a file written by `tipsync model fit --out`")
    if document.get("version") not in READABLE_VERSIONS:
        raise refuse(f"version {document.get('version')!r} is not supported (this tipsync "
                     f"reads versions {', '.join(map(str, READABLE_VERSIONS))})",
                     "refit the model with this tipsync")
    unknown_keys = set(document) - {"format", "version", "match_threshold",
                                    "review_threshold", "levels", "fitted"}
    if unknown_keys:
        raise refuse(f"unknown key(s) {', '.join(sorted(unknown_keys))}",
                     "remove them or refit the model")
    match = _threshold(document.get("match_threshold"), "match_threshold", refuse)
    review = _threshold(document.get("review_threshold"), "review_threshold", refuse)
    if review > match:
        raise refuse(
            f"review_threshold {review} is above match_threshold {match}",
            "a pair reaches review before match: lower review_threshold or raise "
            "match_threshold",
        )
    given_levels = document.get("levels")
    if document.get("version") == 1 and isinstance(given_levels, Mapping):
        given_levels = {
            **{field: {level: {"m": m, "u": u} for level, (m, u) in DEFAULT_LEVELS[field].items()}
               for field in _ADDED_IN_VERSION_2},
            **given_levels,
        }
    levels = _levels(given_levels, refuse)
    fitted = _fitted(document.get("fitted"), refuse)
    model = ScoringModel(levels=levels, match_threshold=match, review_threshold=review)
    return ModelFile(model, fitted)


def _threshold(value: Any, name: str, refuse: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise refuse(f"{name} is {value!r}, not a number", f"set {name} to a match weight "
                     "such as 20.0")
    return float(value)


def _same_names(given: Mapping[str, Any], expected: Mapping[str, Any], kind: str,
                unknown_where: str, missing_where: str, refuse: Any, fix_missing: str) -> None:
    """Refuse names ``given`` has that ``expected`` lacks, then names it lacks."""
    unknown = sorted(set(given) - set(expected))
    if unknown:
        raise refuse(f"unknown {kind} {', '.join(unknown)} {unknown_where} (known: "
                     f"{', '.join(expected)})", "remove them or refit the model")
    missing = [name for name in expected if name not in given]
    if missing:
        raise refuse(f"{kind} {', '.join(missing)} {missing_where}", fix_missing)


def _levels(value: Any, refuse: Any) -> dict[str, Levels]:
    if not isinstance(value, Mapping):
        raise refuse("levels is missing or not an object",
                     "give every field's levels with their m and u")
    _same_names(value, DEFAULT_LEVELS, "field(s)", "in levels", "missing from levels", refuse,
                "every field the scorer compares needs its m and u: refit the model")
    levels: dict[str, Levels] = {}
    for field, expected in DEFAULT_LEVELS.items():
        given = value[field]
        if not isinstance(given, Mapping):
            raise refuse(f"levels.{field} is not an object", "give each level's m and u")
        _same_names(given, expected, "level(s)", f"of {field}", f"of {field} missing", refuse,
                    "every level needs its m and u: refit the model")
        levels[field] = {}
        for level in expected:
            pair = given[level]
            if not isinstance(pair, Mapping) or set(pair) != {"m", "u"}:
                raise refuse(f"levels.{field}.{level} is {pair!r}, not {{\"m\": ..., \"u\": ...}}",
                             "give the level's m and u probabilities")
            for name in ("m", "u"):
                probability = pair[name]
                if (isinstance(probability, bool) or not isinstance(probability, int | float)
                        or not 0 < probability < 1):
                    raise refuse(
                        f"levels.{field}.{level}.{name} is {probability!r}, not a probability "
                        "strictly between 0 and 1",
                        "a level that never or always happens would weigh ±infinity: refit "
                        "the model or correct the value",
                    )
            levels[field][level] = (float(pair["m"]), float(pair["u"]))
    return levels


def _fitted(value: Any, refuse: Any) -> Fitted | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != set(_FITTED_FIELDS):
        raise refuse(f"fitted must be null or hold exactly {', '.join(_FITTED_FIELDS)}",
                     "refit the model, or set fitted to null for hand-made weights")
    try:
        return Fitted(
            records=int(value["records"]), candidate_pairs=int(value["candidate_pairs"]),
            random_pairs=int(value["random_pairs"]),
            expected_matches=float(value["expected_matches"]),
            iterations=int(value["iterations"]), fitted_at=str(value["fitted_at"]),
        )
    except (TypeError, ValueError):
        raise refuse("fitted holds a count that is not a number",
                     "refit the model, or set fitted to null") from None


def describe(model_file: ModelFile) -> list[str]:
    """What an analyst needs to see why pairs match: provenance, thresholds, every weight."""
    model, fitted = model_file.model, model_file.fitted
    lines = [f"scoring model {model_file.fingerprint}"]
    if fitted is None:
        lines.append("  reasoned default weights (not fitted to any records)")
    else:
        lines.append(
            f"  fitted {fitted.fitted_at} by EM on {fitted.records} records, "
            f"{fitted.candidate_pairs} candidate pairs, {fitted.random_pairs} random pairs; "
            f"{fitted.expected_matches:.0f} matching pairs expected, {fitted.iterations} "
            "iterations"
        )
    lines.append(f"  match at a score of {model.match_threshold:g} or more, review at "
                 f"{model.review_threshold:g} or more (score = sum of the fields' weights)")
    lines.append(f"  {'field':<20} {'level':<11} {'weight':>8} {'m':>9} {'u':>11}")
    for field, levels in model.levels.items():
        for level, (m, u) in levels.items():
            lines.append(f"  {field:<20} {level:<11} {model.weight(field, level):>8.2f} "
                         f"{m:>9.4f} {u:>11.3g}")
    return lines


__all__ = [
    "DEFAULT_MODEL_FILE",
    "Fitted",
    "ModelFile",
    "ModelFileError",
    "describe",
    "fingerprint",
    "from_document",
    "loads",
    "model_document",
    "read_model_file",
    "write_model_file",
]
