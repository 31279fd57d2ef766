"""`tipsync produce --classification` cannot label below the agency's own without the
registry's explicit permission, and says how to get it."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest
import yaml

from deploy.cli.produce import FatalError, _governance
from schemas import config
from schemas.agencies import AgencyRegistryError, parse_agencies

REGISTRY = """
agencies:
  - id: police-ctu
    name: Police
    kind: government
    classification: SENSITIVE
    trust: {default: 5}
  - id: shelter
    name: Shelter
    kind: ngo
    classification: SENSITIVE
    may_lower_classification: true
    trust: {default: 5}
"""


def _args(agency: str, label: str | None) -> argparse.Namespace:
    return argparse.Namespace(agency=agency, classification=label, legal_basis=None,
                              consent_ref=None, retention_days=None)


@pytest.fixture(autouse=True)
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "agencies.yaml"
    path.write_text(REGISTRY)
    monkeypatch.setenv(config.AGENCIES, str(path))


def test_lowering_is_refused_with_the_way_out() -> None:
    with pytest.raises(FatalError) as raised:
        _governance(_args("police-ctu", "OFFICIAL"))
    message = str(raised.value)
    assert "below agency 'police-ctu'" in message and "may_lower_classification" in message


def test_raising_is_allowed_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        governance = _governance(_args("police-ctu", "VICTIM_PROTECTED"))
    assert governance.classification == "VICTIM_PROTECTED"
    assert "classification override" in caplog.text


def test_lowering_where_the_registry_allows_it_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        governance = _governance(_args("shelter", "OFFICIAL"))
    assert governance.classification == "OFFICIAL"
    assert "lowered, allowed by the agency registry" in caplog.text


def test_the_registry_key_must_be_a_boolean() -> None:
    with pytest.raises(AgencyRegistryError, match="may_lower_classification"):
        parse_agencies(yaml.safe_load(REGISTRY.replace("may_lower_classification: true",
                                                       "may_lower_classification: perhaps")))
