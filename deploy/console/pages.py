"""The console's optional pages, wired by ``tipsync console``: the stewards' review queue
and the operators' data quality and pipeline status pages."""

from __future__ import annotations

from typing import Any

from schemas.config import Settings


def optional_pages(settings: Settings) -> dict[str, Any]:
    return {}
