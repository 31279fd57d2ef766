"""The service principals of a tipsync deployment and their generated secrets.

Each service authenticates as itself, to Kafka (SCRAM) and to the registry (basic auth), with
one generated secret: ``admin`` (topics, ACLs, schemas, enrolment), ``stream`` (the stream
workers), ``sink`` (the PostgreSQL sink), ``monitor`` (lag and freshness), ``steward``
(stewards' decisions), ``operator`` (``tipsync dlq``: dead letters). Agencies are principals
too, made one by one by ``tipsync agency enroll``; they are not in this list.

The secrets are made once, by the first ``stack up``, into ``secrets/principals.json`` (mode
0600) and never printed; the registry user store gets each service's digest at the same time
(``admin`` as registry admin, the others as readers).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from deploy.stack import registry_users
from deploy.stack.layout import StateLayout, private_folder

ADMIN: Final = "admin"
STREAM: Final = "stream"
SINK: Final = "sink"
MONITOR: Final = "monitor"
STEWARD: Final = "steward"
OPERATOR: Final = "operator"  # `tipsync dlq`: reads dead letters, replays them
SERVICE_PRINCIPALS: Final = (ADMIN, STREAM, SINK, MONITOR, STEWARD, OPERATOR)
STORE_NAME: Final = "principals.json"
# the admin's replaced secrets, until the broker holds the new one (deploy.stack.admin_credential)
PREVIOUS_ADMIN_STORE_NAME: Final = "admin-previous.json"
PREVIOUS_ADMIN_KEPT: Final = 3
AGENCY_STORE_NAME: Final = "agency-secrets.json"
AGENCY_PRINCIPAL_PREFIX: Final = "agency-"


def new_secret() -> str:
    """A generated secret: 32 random bytes, URL-safe text (no ':' or '@')."""
    return secrets.token_urlsafe(32)


def store_path(layout: StateLayout) -> Path:
    return layout.secrets / STORE_NAME


def service_secrets(layout: StateLayout) -> dict[str, str]:
    """Principal -> secret of every service principal, made (and granted in the registry
    user store) the first time; the same on every later call."""
    path = store_path(layout)
    known: dict[str, str] = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    missing = [name for name in SERVICE_PRINCIPALS if name not in known]
    if missing:
        for name in missing:
            known[name] = new_secret()
        _write_private_json(path, known)
    granted = registry_users.entries(layout)
    for name in SERVICE_PRINCIPALS:
        # Granted anew when missing from the store or stored in an older digest form.
        stored = granted.get(name, {}).get("digest")
        if name in missing or stored != registry_users.digest(name, known[name]):
            registry_users.grant(
                layout, name, known[name], "admin" if name == ADMIN else "reader"
            )
    return {name: known[name] for name in SERVICE_PRINCIPALS}


def renew_service_secret(layout: StateLayout, principal: str) -> str:
    """A new secret for the service ``principal``, replacing the one in ``principals.json``
    and in the registry user store (the registry takes it when it restarts); the broker's
    credential and the client file are the caller's to change (``deploy.operations.rotation``)."""
    if principal not in SERVICE_PRINCIPALS:
        raise ValueError(
            f"'{principal}' is not a service principal (expected one of"
            f" {', '.join(SERVICE_PRINCIPALS)}); an agency's secret rotates with"
            " `tipsync agency rotate ID`"
        )
    known = service_secrets(layout)
    if principal == ADMIN:
        # kept before it is replaced: if the broker never hears of the new one, the old one
        # still logs in and repairs it
        kept = [*previous_admin_secrets(layout), known[ADMIN]][-PREVIOUS_ADMIN_KEPT:]
        _write_private_json(previous_store_path(layout), {"secrets": kept})
    known[principal] = new_secret()
    _write_private_json(store_path(layout), known)
    registry_users.grant(layout, principal, known[principal],
                         "admin" if principal == ADMIN else "reader")
    return known[principal]


def previous_store_path(layout: StateLayout) -> Path:
    return layout.secrets / PREVIOUS_ADMIN_STORE_NAME


def previous_admin_secrets(layout: StateLayout) -> list[str]:
    """The admin's replaced secrets the broker may still hold, oldest first."""
    path = previous_store_path(layout)
    kept = json.loads(path.read_text("utf-8")).get("secrets", []) if path.is_file() else []
    return [secret for secret in kept if isinstance(secret, str)]


def forget_previous_admin_secrets(layout: StateLayout) -> None:
    """The broker holds the admin's current secret: the replaced ones go."""
    previous_store_path(layout).unlink(missing_ok=True)


def _write_private_json(path: Path, data: dict[str, Any]) -> None:
    private_folder(path.parent)
    temporary = path.with_suffix(".tmp")
    temporary.touch(mode=0o600, exist_ok=True)
    temporary.chmod(0o600)
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", "utf-8")
    temporary.replace(path)


# ---------------------------------------------------------------------------------------------
# Agencies: the secret an agency's enrolment hands over is made beforehand, by `stack up`, for
# every agency of the registry, so the schema registry (which reads its users only when it
# starts) already knows it when the agency is enrolled: enrolling needs no registry restart.


def agency_principal(agency_id: str) -> str:
    """The Kafka and registry user of an agency: ``agency-<id>`` (never a service's name)."""
    return AGENCY_PRINCIPAL_PREFIX + agency_id


def _agency_store(layout: StateLayout) -> Path:
    return layout.secrets / AGENCY_STORE_NAME


def _read_agency_store(layout: StateLayout) -> dict[str, str]:
    path = _agency_store(layout)
    data: dict[str, str] = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    return data


def _write_agency_store(layout: StateLayout, known: dict[str, str]) -> None:
    _write_private_json(_agency_store(layout), known)


def prepare_agency_secrets(layout: StateLayout, agency_ids: Iterable[str]) -> list[str]:
    """Make the future secret of each agency that has none (``secrets/agency-secrets.json``,
    0600) and grant it the registry's reader role; the agencies granted anew, sorted. Nothing
    reaches Kafka here: an agency can connect only once ``tipsync agency enroll`` created its
    SCRAM credential and ACLs."""
    known = _read_agency_store(layout)
    added = sorted(agency_id for agency_id in set(agency_ids) if agency_id not in known)
    for agency_id in added:
        known[agency_id] = new_secret()
    if added:
        _write_agency_store(layout, known)
    granted = registry_users.entries(layout)
    fresh = []
    for agency_id, secret in sorted(known.items()):
        principal = agency_principal(agency_id)
        if granted.get(principal, {}).get("digest") != registry_users.digest(principal, secret):
            registry_users.grant(layout, principal, secret, "reader")
            fresh.append(agency_id)
    return fresh


def agency_secret(layout: StateLayout, agency_id: str) -> str:
    """The agency's prepared secret, made now (with its registry grant) when there is none."""
    prepare_agency_secrets(layout, [agency_id])
    return _read_agency_store(layout)[agency_id]


def renew_agency_secret(layout: StateLayout, agency_id: str) -> str:
    """A new secret for the agency, replacing its old one in ``agency-secrets.json`` and in
    the registry user store (the registry takes it when it restarts)."""
    known = _read_agency_store(layout)
    known[agency_id] = new_secret()
    _write_agency_store(layout, known)
    registry_users.grant(layout, agency_principal(agency_id), known[agency_id], "reader")
    return known[agency_id]


def forget_agency_secret(layout: StateLayout, agency_id: str) -> bool:
    """Drop a revoked agency's secret (a later enrolment gets a new one); True if it was
    there."""
    known = _read_agency_store(layout)
    if known.pop(agency_id, None) is None:
        return False
    _write_agency_store(layout, known)
    return True
