"""Who may use the schema registry, and as what: the local stack's registry user store.

One entry per principal (the admin, each service, each enrolled agency), with its role:
``admin`` registers and changes schemas, ``reader`` only reads them. The Kafka principal and
the registry user share one name and one generated secret, so a client properties file holds
one credential. The store (``secrets/registry-users.json``, mode 0600) keeps no password, only
the digest the registry's realm checks (``digest``), and ``deploy.stack.registry`` turns it
into the registry's own user and role files when it starts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from deploy.stack.layout import StateLayout, private_folder

Role = Literal["admin", "reader"]
ROLES: tuple[Role, ...] = ("admin", "reader")
REALM = "tipsync"
STORE_NAME = "registry-users.json"


def store_path(layout: StateLayout) -> Path:
    return layout.secrets / STORE_NAME


def digest(principal: str, secret: str) -> str:
    """The registry realm's password form: hex MD5 of ``user:realm:password`` (Quarkus'
    properties-file realm with ``plain-text=false``)."""
    return hashlib.md5(f"{principal}:{REALM}:{secret}".encode()).hexdigest()  # noqa: S324


def list_users(layout: StateLayout) -> dict[str, Role]:
    """Principal -> role, sorted by principal."""
    found: dict[str, Role] = {}
    for name, entry in sorted(_read(layout).items()):
        role = entry["role"]
        found[name] = "admin" if role == "admin" else "reader"
    return found


def grant(layout: StateLayout, principal: str, secret: str, role: Role) -> None:
    """Add or replace ``principal`` with ``role``; takes effect when the registry (re)loads
    its users (``deploy.stack.registry``)."""
    if role not in ROLES:
        raise ValueError(f"registry role '{role}' is unknown (expected one of {ROLES})")
    users = _read(layout)
    users[principal] = {"role": role, "digest": digest(principal, secret)}
    _write(layout, users)


def revoke(layout: StateLayout, principal: str) -> bool:
    """Remove ``principal``; True when it was there."""
    users = _read(layout)
    if users.pop(principal, None) is None:
        return False
    _write(layout, users)
    return True


def entries(layout: StateLayout) -> dict[str, dict[str, str]]:
    """Principal -> {"role", "digest"}: what the registry's realm files are made from."""
    return _read(layout)


def _read(layout: StateLayout) -> dict[str, dict[str, str]]:
    path = store_path(layout)
    if not path.is_file():
        return {}
    data: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _write(layout: StateLayout, users: dict[str, dict[str, str]]) -> None:
    private_folder(layout.secrets)
    path = store_path(layout)
    temporary = path.with_suffix(".tmp")
    temporary.touch(mode=0o600, exist_ok=True)
    temporary.chmod(0o600)
    temporary.write_text(json.dumps(users, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    temporary.replace(path)
