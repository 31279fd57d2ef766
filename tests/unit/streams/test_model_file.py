"""Model files: a fitted model survives a round trip, and every malformed file is refused with
a message naming the file, the problem and the fix."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from streams.resolve.model_file import (
    DEFAULT_MODEL_FILE,
    Fitted,
    ModelFile,
    ModelFileError,
    describe,
    fingerprint,
    loads,
    read_model_file,
    write_model_file,
)
from streams.resolve.scoring import DEFAULT_LEVELS, ScoringModel

FITTED = Fitted(records=1200, candidate_pairs=5400, random_pairs=50_000,
                expected_matches=310.5, iterations=9, fitted_at="2026-11-30T04:00:00+00:00")


def _fitted_model() -> ScoringModel:
    levels = {field: dict(levels) for field, levels in DEFAULT_LEVELS.items()}
    levels["given_name"]["exact"] = (0.912345678901, 0.0123456789)
    return ScoringModel(levels=levels, match_threshold=13.421, review_threshold=7.421)


def test_a_written_model_reads_back_with_the_same_weights_thresholds_and_fingerprint(
    tmp_path: Path,
) -> None:
    original = ModelFile(_fitted_model(), FITTED)
    path = tmp_path / "models" / "person.json"
    write_model_file(path, original)
    read = read_model_file(path)
    assert read.model.levels == original.model.levels
    assert (read.model.match_threshold, read.model.review_threshold) == (13.421, 7.421)
    assert read.fitted == FITTED
    assert read.fingerprint == original.fingerprint
    assert read.model.weight("given_name", "exact") == original.model.weight("given_name",
                                                                              "exact")


def test_the_fingerprint_follows_the_weights_not_the_provenance() -> None:
    fitted = ModelFile(_fitted_model(), FITTED)
    refitted_later = ModelFile(_fitted_model(), Fitted(**{**FITTED.__dict__,
                                                          "fitted_at": "2026-12-01"}))
    assert fitted.fingerprint == refitted_later.fingerprint
    assert fitted.fingerprint != DEFAULT_MODEL_FILE.fingerprint
    assert fingerprint(ScoringModel()) == DEFAULT_MODEL_FILE.fingerprint


def test_the_file_holds_only_probabilities_and_counts() -> None:
    document = ModelFile(_fitted_model(), FITTED).to_document()
    assert set(document) == {"format", "version", "match_threshold", "review_threshold",
                             "levels", "fitted"}
    for levels in document["levels"].values():
        for pair in levels.values():
            assert set(pair) == {"m", "u"} and all(0 < p < 1 for p in pair.values())


def test_describe_lists_every_field_level_with_its_weight() -> None:
    lines = describe(ModelFile(_fitted_model(), FITTED))
    text = "\n".join(lines)
    assert "1200 records, 5400 candidate pairs" in text
    assert "match at a score of 13.421" in text
    rows = [line for line in lines if line.startswith("  given_name ")]
    assert len(rows) == len(DEFAULT_LEVELS["given_name"])
    assert f"{_fitted_model().weight('given_name', 'exact'):.2f}" in rows[0]


def _document() -> dict[str, Any]:
    return ModelFile(_fitted_model(), FITTED).to_document()


def _refusal(document: Any) -> str:
    with pytest.raises(ModelFileError) as raised:
        loads(json.dumps(document), "models/person.json")
    message = str(raised.value)
    assert message.startswith("model file models/person.json: ")
    return message


def test_a_file_of_another_format_is_refused() -> None:
    message = _refusal({**_document(), "format": "splink"})
    assert "format is 'splink'" in message and "tipsync model fit --out" in message


def test_a_file_of_another_version_is_refused() -> None:
    assert "version 3 is not supported" in _refusal({**_document(), "version": 3})


def test_a_version_1_file_reads_with_the_default_levels_of_the_date_of_birth_text() -> None:
    """Version 2 added the field date_of_birth_text; a file (or recorded model) of version 1
    lacks it and is read with its reasoned default levels, every other weight unchanged."""
    document = _document()
    assert document["version"] == 2
    del document["levels"]["date_of_birth_text"]
    read = loads(json.dumps({**document, "version": 1}), "models/person.json")
    assert read.model.levels["date_of_birth_text"] == DEFAULT_LEVELS["date_of_birth_text"]
    assert read.model.levels == _fitted_model().levels
    assert read.fingerprint == ModelFile(_fitted_model(), FITTED).fingerprint
    # version 2 without the field is incomplete, as before
    assert "date_of_birth_text missing from levels" in _refusal(document)


def test_an_unknown_field_is_refused() -> None:
    document = _document()
    document["levels"]["shoe_size"] = {"exact": {"m": 0.5, "u": 0.1}}
    message = _refusal(document)
    assert "unknown field(s) shoe_size" in message and "remove them" in message


def test_an_unknown_level_is_refused() -> None:
    document = _document()
    document["levels"]["sex"]["maybe"] = {"m": 0.5, "u": 0.5}
    assert "unknown level(s) maybe of sex" in _refusal(document)


def test_a_missing_level_is_refused() -> None:
    document = _document()
    del document["levels"]["date_of_birth"]["one_edit"]
    assert "level(s) one_edit of date_of_birth missing" in _refusal(document)


@pytest.mark.parametrize("probability", [0, 1, 1.5, -0.1, "0.5", True, None])
def test_a_probability_outside_zero_and_one_is_refused(probability: Any) -> None:
    document = copy.deepcopy(_document())
    document["levels"]["phone"]["shared"]["u"] = probability
    message = _refusal(document)
    assert "levels.phone.shared.u" in message and "strictly between 0 and 1" in message


def test_a_review_threshold_above_the_match_threshold_is_refused() -> None:
    message = _refusal({**_document(), "match_threshold": 10.0, "review_threshold": 12.0})
    assert "review_threshold 12.0 is above match_threshold 10.0" in message


def test_a_threshold_that_is_not_a_number_is_refused() -> None:
    assert "match_threshold is 'high', not a number" in _refusal(
        {**_document(), "match_threshold": "high"}
    )


def test_text_that_is_not_json_is_refused() -> None:
    with pytest.raises(ModelFileError, match=r"model file m\.json: is not JSON"):
        loads("{levels:", "m.json")


def test_a_missing_file_is_refused_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"model file .*absent\.json: cannot be read"):
        read_model_file(tmp_path / "absent.json")
