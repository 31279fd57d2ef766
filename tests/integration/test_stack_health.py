"""``tipsync stack status``'s DEGRADED state on the real parts: each running but not usable,
and the sentence naming the fix. (Kafka refusing the admin's file is checked in
``test_admin_rotation.py``, where that state is made.)"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import httpx

from deploy.stack.health import postgres_health, registry_health
from deploy.stack.stack import LocalStack
from schemas.config import Settings


def test_status_says_up_with_a_state_for_every_part_of_a_running_stack(stack: Settings) -> None:
    shown = subprocess.run([sys.executable, "-m", "deploy.cli", "stack", "status", "--json"],
                           capture_output=True, text=True, timeout=120)
    report = json.loads(shown.stdout)
    assert shown.returncode == 0, report
    assert {name: (fields["state"], fields["problem"]) for name, fields in report.items()} == {
        "kafka": ("up", None), "registry": ("up", None), "postgres": ("up", None)}


def test_a_database_without_the_store_is_degraded_and_names_db_migrate(stack: Settings) -> None:
    # the same server and owner, another database: it answers, but holds no reconciled store
    elsewhere = replace(stack, database_url=stack.database_url.replace("/tipsync?", "/postgres?"))
    health = postgres_health(LocalStack(elsewhere).postgres)
    assert health.state == "degraded"
    assert health.problem is not None and "tipsync db migrate" in health.problem


def test_a_registry_refusing_the_admins_credentials_is_degraded(stack: Settings) -> None:
    registry = LocalStack(stack).registry
    wrong = replace(registry.connection(), auth=httpx.BasicAuth("admin", "not-the-secret"))
    health = registry_health(registry, wrong)
    assert health.state == "degraded"
    assert health.problem is not None
    assert "HTTP 401" in health.problem and "tipsync stack up" in health.problem
