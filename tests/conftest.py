"""Shared fixtures. Integration tests (marker ``integration``) use the real local stack,
started once per session by ``tipsync stack up`` (a no-op when it is already up)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from schemas.config import Settings, load_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """The local stack, up and answering; tests that cross a process boundary use it."""
    result = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "stack", "up"], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(f"tipsync stack up failed:\n{result.stdout}\n{result.stderr}")
    return settings

