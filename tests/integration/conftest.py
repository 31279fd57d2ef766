"""Every test under tests/integration runs against the real local stack."""

from __future__ import annotations

import pytest

from schemas.config import Settings


@pytest.fixture(autouse=True)
def _real_stack(stack: Settings) -> Settings:
    return stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.integration)
