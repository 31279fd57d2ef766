"""Which login ``tipsync review`` reads as (deploy/stewardship/login.py), before any
connection: never the store's own URL, which is its owner's."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.operations.audit import Filters, merge, parse_server_log
from deploy.stewardship.login import StewardRefused, steward_conninfo
from schemas import config

STEWARD_URI = ("postgresql://rosa_steward@127.0.0.1:15432/tipsync?passfile=/home/rosa/rosa.uri"
               ".pgpass&sslmode=verify-full")


def test_without_a_login_the_queue_is_refused_naming_the_command_that_makes_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(config.STEWARD_CONNECTION, raising=False)
    monkeypatch.setenv(config.DATABASE_URL, "postgresql://tipsync@127.0.0.1/tipsync")
    with pytest.raises(StewardRefused) as refused:
        steward_conninfo(None, None)
    assert "never as the store's owner" in str(refused.value)
    assert "tipsync analyst add NAME --steward --clearance" in str(refused.value)
    assert config.STEWARD_CONNECTION in str(refused.value)


def test_the_connection_file_comes_from_the_option_else_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from_variable, from_option = tmp_path / "variable.uri", tmp_path / "option.uri"
    from_variable.write_text(f"# Rosa's login\n{STEWARD_URI}\n")
    from_option.write_text(STEWARD_URI.replace("rosa_steward", "ivan_steward") + "\n")
    monkeypatch.setenv(config.STEWARD_CONNECTION, str(from_variable))
    assert steward_conninfo(None, None) == STEWARD_URI
    assert steward_conninfo(from_option, None).startswith("postgresql://ivan_steward@")


def test_a_password_in_the_url_or_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StewardRefused, match="carries a password"):
        steward_conninfo(None, "postgresql://rosa_steward:secret@127.0.0.1/tipsync")
    with pytest.raises(StewardRefused, match="cannot read the connection file"):
        steward_conninfo(tmp_path / "absent.uri", None)


def test_review_reads_are_reported_by_what_the_steward_was_doing() -> None:
    person = "430e7ebb-0bd2-4445-ad24-c132144d4e17"
    at = "2026-12-06T05:08:36.100000Z"
    logged = ('{"timestamp": "2026-12-06 05:08:36.372 UTC", "user": "rosa_steward", "dbname":'
              ' "tipsync", "pid": 7, "message": "tipsync read: at=' + at
              + ' path=review_pair person=' + person + '"}\n')
    statements, persons = parse_server_log([logged], Filters())
    [entry] = merge([], persons, statements, Filters())
    assert (entry.analyst, entry.through, entry.person_id, entry.recorded_in) == (
        "rosa_steward", "review pair (side by side)", person, "server log only")
