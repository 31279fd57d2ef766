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


def test_agency_secrets_are_prepared_for_the_registry_before_enrolment(tmp_path: Path) -> None:
    from deploy.stack.principals import (
        agency_principal,
        agency_secret,
        forget_agency_secret,
        prepare_agency_secrets,
    )

    layout = StateLayout(tmp_path / "home", tmp_path / "cache")
    assert prepare_agency_secrets(layout, ["police-ctu", "shelter"]) == ["police-ctu", "shelter"]
    assert prepare_agency_secrets(layout, ["police-ctu", "shelter"]) == []  # kept, granted
    secret = agency_secret(layout, "police-ctu")
    stored = registry_users.entries(layout)[agency_principal("police-ctu")]
    assert stored == {"role": "reader",
                      "digest": registry_users.digest("agency-police-ctu", secret)}
    assert secret not in registry_users.store_path(layout).read_text()
    assert stat.S_IMODE((layout.secrets / "agency-secrets.json").stat().st_mode) == 0o600
    assert forget_agency_secret(layout, "police-ctu")
    assert agency_secret(layout, "police-ctu") != secret  # a later enrolment: a new secret
