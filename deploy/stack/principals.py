"""The service principals of a tipsync deployment and their generated secrets.

Each service authenticates as itself, to Kafka (SCRAM) and to the registry (basic auth), with
one generated secret: ``admin`` (topics, ACLs, schemas, enrolment), ``stream`` (the stream
workers), ``sink`` (the PostgreSQL sink), ``monitor`` (lag and freshness), ``steward``
(stewards' decisions). Agencies are principals too, made one by one by ``tipsync agency
enroll``; they are not in this list.

The secrets are made once, by the first ``stack up``, into ``secrets/principals.json`` (mode
0600) and never printed; the registry user store gets each service's digest at the same time
(``admin`` as registry admin, the others as readers).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Final

from deploy.stack import registry_users
from deploy.stack.layout import StateLayout, private_folder

ADMIN: Final = "admin"
STREAM: Final = "stream"
SINK: Final = "sink"
MONITOR: Final = "monitor"
STEWARD: Final = "steward"
SERVICE_PRINCIPALS: Final = (ADMIN, STREAM, SINK, MONITOR, STEWARD)
STORE_NAME: Final = "principals.json"


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
        private_folder(layout.secrets)
        temporary = path.with_suffix(".tmp")
        temporary.touch(mode=0o600, exist_ok=True)
        temporary.chmod(0o600)
        temporary.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n", "utf-8")
        temporary.replace(path)
    granted = registry_users.entries(layout)
    for name in SERVICE_PRINCIPALS:
        # Granted anew when missing from the store or stored in an older digest form.
        stored = granted.get(name, {}).get("digest")
        if name in missing or stored != registry_users.digest(name, known[name]):
            registry_users.grant(
                layout, name, known[name], "admin" if name == ADMIN else "reader"
            )
    return {name: known[name] for name in SERVICE_PRINCIPALS}
