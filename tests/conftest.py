"""Shared fixtures. Integration tests (marker ``integration``) use the real local stack,
started once per session by ``tipsync stack up`` (a no-op when it is already up).

The stack is secure (SASL_SSL, ACLs): tests' own clients connect as ``admin`` (``settings``
reads the local stack's admin file), and so do the ``tipsync`` processes a test starts for
topics under a root of its own, which the service principals' ACLs (granted for ``tip``)
do not cover: the ``stack`` fixture names the admin's file in the client-config variable.
A test that checks a principal's own rights clears it (``config.CLIENT_CONFIG: ""``) or
gives that principal's file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from schemas import config
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
    admin_file = config.local_client_file(settings.home, config.DEFAULT_PRINCIPAL)
    os.environ.setdefault(config.CLIENT_CONFIG, str(admin_file))
    return settings

