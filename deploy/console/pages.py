"""The console's optional pages, wired by ``tipsync console``: the stewards' review queue
and the operators' data quality and pipeline status pages."""

from __future__ import annotations

from typing import Any

from deploy.console.operations import operations_routes
from deploy.console.pipeline import Pipeline
from deploy.console.review import review_routes


def optional_pages(pipeline: Pipeline, database_url: str) -> dict[str, Any]:
    return {"review": review_routes(pipeline),
            "operations": operations_routes(pipeline, database_url)}
