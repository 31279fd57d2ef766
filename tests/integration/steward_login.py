"""A steward's own login for tests that run ``tipsync review decide``: a VICTIM_PROTECTED
steward of every agency (so every record the store may hold is within its clearance), made
with ``add_analyst`` as ``tipsync analyst add --steward`` makes one, removed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deploy.operations.analysts import add_analyst, admin_conninfo, remove_analyst
from schemas.config import Settings


@dataclass(frozen=True)
class StewardLogin:
    name: str
    connection_file: Path
    admin: str

    def remove(self) -> None:
        remove_analyst(self.admin, self.name)


def make_steward_login(settings: Settings, folder: Path,
                       database_url: str | None = None) -> StewardLogin:
    """A new steward on ``database_url`` (the stack's store by default)."""
    url = database_url or settings.database_url
    admin = admin_conninfo(url, settings.pgpass_file)
    name = f"steward_{uuid.uuid4().hex[:8]}"
    files = add_analyst(admin, url, name, "VICTIM_PROTECTED", None, folder / f"{name}.uri",
                        steward=True)
    return StewardLogin(name, files.uri_file, admin)


@contextmanager
def steward_login(settings: Settings, folder: Path) -> Iterator[StewardLogin]:
    login = make_steward_login(settings, folder)
    try:
        yield login
    finally:
        login.remove()
