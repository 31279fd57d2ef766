"""Service principals: secrets made once, private, and granted in the registry user store."""

from __future__ import annotations

import stat
from pathlib import Path

from deploy.stack import registry_users
from deploy.stack.layout import StateLayout
from deploy.stack.principals import SERVICE_PRINCIPALS, service_secrets, store_path


def test_secrets_are_made_once_and_private(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path / "home", tmp_path / "cache")
    first = service_secrets(layout)
    assert sorted(first) == sorted(SERVICE_PRINCIPALS)
    assert len(set(first.values())) == len(SERVICE_PRINCIPALS)
    assert service_secrets(layout) == first
    assert stat.S_IMODE(store_path(layout).stat().st_mode) == 0o600
    roles = registry_users.list_users(layout)
    assert roles["admin"] == "admin" and roles["stream"] == "reader"
    stored = registry_users.entries(layout)["sink"]
    assert stored["digest"] == registry_users.digest("sink", first["sink"])
    assert first["sink"] not in registry_users.store_path(layout).read_text()
