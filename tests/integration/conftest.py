"""Every test under tests/integration runs against the real local stack."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from schemas.config import Settings


@pytest.fixture(autouse=True)
def _real_stack(stack: Settings) -> Settings:
    return stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.integration)


@pytest.fixture
def enroll_agency(stack: Settings, tmp_path: Path) -> Callable[[str, str], Path]:
    """``enroll_agency(agency_id, topic_root)``: the agency enrolled for that root by the real
    ``tipsync agency enroll`` (as the admin), and the path of the file handed over to it
    (``--out``, the CA beside it). Agencies publish with it: ``--client-config FILE``."""

    def enroll(agency_id: str, topic_root: str) -> Path:
        out = tmp_path / "agencies" / f"{agency_id}.properties"
        result = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "agency", "enroll", agency_id,
             "--topic-root", topic_root, "--out", str(out)],
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return out

    return enroll
