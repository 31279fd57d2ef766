"""Service principals: secrets made once, private, and granted in the registry user store."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

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


def test_a_renewed_secret_replaces_the_old_one_in_the_store_and_the_registry(
    tmp_path: Path,
) -> None:
    from deploy.stack.principals import (
        agency_principal,
        agency_secret,
        renew_agency_secret,
        renew_service_secret,
    )

    layout = StateLayout(tmp_path / "home", tmp_path / "cache")
    before = service_secrets(layout)
    renewed = renew_service_secret(layout, "monitor")
    after = service_secrets(layout)
    assert renewed != before["monitor"] and after["monitor"] == renewed
    assert {name: after[name] for name in after if name != "monitor"} == {
        name: before[name] for name in before if name != "monitor"}
    assert registry_users.entries(layout)["monitor"]["digest"] == registry_users.digest(
        "monitor", renewed)
    assert stat.S_IMODE(store_path(layout).stat().st_mode) == 0o600
    old = agency_secret(layout, "customs")
    new = renew_agency_secret(layout, "customs")
    assert new != old and agency_secret(layout, "customs") == new
    assert registry_users.entries(layout)[agency_principal("customs")] == {
        "role": "reader", "digest": registry_users.digest("agency-customs", new)}


def test_only_a_service_principal_is_rotated_as_a_service(tmp_path: Path) -> None:
    from deploy.stack.principals import renew_service_secret

    layout = StateLayout(tmp_path / "home", tmp_path / "cache")
    with pytest.raises(ValueError, match="tipsync agency rotate"):
        renew_service_secret(layout, "agency-customs")
