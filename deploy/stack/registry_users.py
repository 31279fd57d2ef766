"""Who may use the schema registry, and as what: the local stack's registry user store.

One entry per principal (the admin, each service, each enrolled agency), with its role:
``admin`` registers and changes schemas, ``reader`` only reads them. The Kafka principal and
the registry user share one name and one generated secret, so a client properties file holds
one credential. The store (``secrets/registry-users.json``, mode 0600) keeps no password, only
the digest the registry's realm checks (``digest``), and ``deploy.stack.registry`` turns it
into the registry's realm file (``realm_properties``) when it starts: Quarkus' embedded
properties realm, the one user store Apicurio's distribution carries besides OIDC.

Apicurio reads the realm only when it starts, so a change here takes effect when the local
registry restarts (``Registry.reload``, which enrolment calls after ``grant``/``revoke``).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Literal

from deploy.stack.layout import StateLayout, private_folder

Role = Literal["admin", "reader"]
ROLES: tuple[Role, ...] = ("admin", "reader")
# Apicurio's roles (``apicurio.auth.roles.*``): sr-admin registers and changes schemas, rules
# and configuration; sr-readonly reads. Apicurio's third role, sr-developer, is not given.
APICURIO_ROLES: dict[Role, str] = {"admin": "sr-admin", "reader": "sr-readonly"}
# The realm's name is part of the digest. Quarkus fixes it when the application is built
# (``quarkus.security.users.embedded.realm-name``, build time); Apicurio's build keeps
# Quarkus' default, so every digest is made with it.
REALM = "Quarkus"
# ``quarkus.security.users.embedded.algorithm``: hex SHA-512 of ``user:realm:password``.
ALGORITHM = "digest-sha-512"
STORE_NAME = "registry-users.json"
# A principal is a basic-auth user name, a Kafka principal and a key of the realm file:
# letters, digits, '.', '_', '-' (no ':', which ends a basic-auth user name).
PRINCIPAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
REALM_PREFIX = "quarkus.security.users.embedded"
DIGEST = re.compile(r"[0-9a-f]{128}")


def store_path(layout: StateLayout) -> Path:
    return layout.secrets / STORE_NAME


def digest(principal: str, secret: str) -> str:
    """The registry realm's password form: hex SHA-512 of ``user:realm:password`` (Quarkus'
    embedded realm with ``plain-text=false`` and ``algorithm=digest-sha-512``)."""
    return hashlib.sha512(f"{principal}:{REALM}:{secret}".encode()).hexdigest()


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
    if not PRINCIPAL.fullmatch(principal):
        raise ValueError(
            f"registry user name {principal!r} cannot be used: give 1 to 100 letters, digits,"
            " '.', '_' or '-', starting with a letter or digit"
        )
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


def realm_properties(users: dict[str, dict[str, str]]) -> str:
    """The registry's realm file (Quarkus configuration, read through
    ``quarkus.config.locations``) for ``users`` as ``entries`` gives them: each user's digest
    and Apicurio role. Names are quoted keys, so a '.' in a name stays in the name."""
    lines = [
        "# Made by tipsync from secrets/registry-users.json when the registry starts; edits are",
        "# overwritten. Digests only: hex SHA-512 of user:realm:password.",
        f"{REALM_PREFIX}.plain-text=false",
        f"{REALM_PREFIX}.algorithm={ALGORITHM}",
    ]
    for name, entry in sorted(users.items()):
        if not PRINCIPAL.fullmatch(name):
            raise ValueError(
                f"registry user store holds the name {name!r}, which the registry's realm"
                " cannot take; revoke it (`tipsync agency revoke`) and enrol it again"
            )
        if not DIGEST.fullmatch(entry.get("digest", "")):
            raise ValueError(
                f"registry user store holds for {name!r} a digest that is not hex SHA-512"
                " (an older form); revoke it and enrol it again (a service principal: run"
                " `tipsync stack up`, which grants it anew)"
            )
        role: Role = "admin" if entry["role"] == "admin" else "reader"
        lines.append(f'{REALM_PREFIX}.users."{name}"={entry["digest"]}')
        lines.append(f'{REALM_PREFIX}.roles."{name}"={APICURIO_ROLES[role]}')
    return "\n".join(lines) + "\n"


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
