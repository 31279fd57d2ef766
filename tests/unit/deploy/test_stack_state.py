"""The stack's safety checks that need nothing running: ports, state folders, settings."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.stack import postgres as services
from deploy.stack.layout import StackError, private_folder, traversable_path
from deploy.stack.processes import require_free_port
from deploy.stack.stack import LocalStack, prepare_benchmark_folder
from schemas.config import load_settings


def test_settings_default_to_the_local_stack(tmp_path: Path) -> None:
    settings = load_settings({"TIPSYNC_HOME": str(tmp_path)})
    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert settings.registry_url == "https://127.0.0.1:18081/apis/ccompat/v7"
    assert settings.database_url.startswith("postgresql://tipsync@127.0.0.1:15432/tipsync")
    assert f"passfile={tmp_path}/secrets/pgpass" in settings.database_url
    assert settings.cache == tmp_path / "cache"


def test_settings_follow_the_environment_so_the_same_code_runs_in_production() -> None:
    settings = load_settings(
        {
            "TIPSYNC_KAFKA_BOOTSTRAP": "kafka-1.internal:9092,kafka-2.internal:9092",
            "TIPSYNC_REGISTRY_URL": "https://registry.internal/apis/ccompat/v7/",
            "TIPSYNC_DATABASE_URL": "postgresql://sink@db.internal:5432/tipsync",
        }
    )
    assert settings.kafka_port == 9092
    assert settings.registry_url == "https://registry.internal/apis/ccompat/v7"
    assert settings.postgres_port == 5432


def test_a_port_in_use_names_the_port_and_the_variable_that_moves_it() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(StackError) as error:
            require_free_port(port, "Kafka", "TIPSYNC_KAFKA_BOOTSTRAP")
    assert str(port) in str(error.value)
    assert "TIPSYNC_KAFKA_BOOTSTRAP" in str(error.value)


def test_a_foreign_state_folder_is_refused_with_a_pointer_to_reset(tmp_path: Path) -> None:
    (tmp_path / "someone-elses-file.txt").write_text("not ours")
    stack = LocalStack(load_settings({"TIPSYNC_HOME": str(tmp_path)}))
    with pytest.raises(StackError, match="stack reset --yes"):
        stack.check_state_folder()


def test_a_corrupt_state_marker_is_refused_with_a_pointer_to_reset(tmp_path: Path) -> None:
    (tmp_path / "tipsync-state.json").write_text("{not json")
    stack = LocalStack(load_settings({"TIPSYNC_HOME": str(tmp_path)}))
    with pytest.raises(StackError, match="corrupt"):
        stack.check_state_folder()


def test_a_new_state_folder_is_claimed_and_reset_keeps_the_downloads(tmp_path: Path) -> None:
    home = tmp_path / "state"
    stack = LocalStack(load_settings({"TIPSYNC_HOME": str(home)}))
    stack.check_state_folder()
    assert json.loads((home / "tipsync-state.json").read_text()) == {"format": 2}
    (home / "cache").mkdir()
    (home / "cache" / "kafka.jar").write_text("jar")
    (home / "kafka").mkdir()
    stack.reset()
    assert sorted(path.name for path in home.iterdir()) == ["cache", "tipsync-state.json"]
    assert (home / "cache" / "kafka.jar").exists()


def test_up_accepts_the_folder_reset_leaves(tmp_path: Path) -> None:
    home = tmp_path / "state"
    stack = LocalStack(load_settings({"TIPSYNC_HOME": str(home)}))
    stack.check_state_folder()
    (home / "cache").mkdir()
    (home / "kafka").mkdir()
    stack.reset()
    stack.check_state_folder()  # what `up` checks first: no "not a tipsync state folder"
    assert json.loads((home / "tipsync-state.json").read_text()) == {"format": 2}


def test_a_folder_an_older_reset_left_holding_only_downloads_is_claimed(tmp_path: Path) -> None:
    # Older tipsync versions' reset deleted the marker too, leaving only cache/.
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "kafka.jar").write_text("jar")
    stack = LocalStack(load_settings({"TIPSYNC_HOME": str(tmp_path)}))
    stack.check_state_folder()
    assert json.loads((tmp_path / "tipsync-state.json").read_text()) == {"format": 2}
    assert (tmp_path / "cache" / "kafka.jar").exists()


def test_downloads_beside_a_foreign_file_are_still_refused(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "notes.txt").write_text("not ours")
    stack = LocalStack(load_settings({"TIPSYNC_HOME": str(tmp_path)}))
    with pytest.raises(StackError, match="not a tipsync state folder"):
        stack.check_state_folder()


def test_a_private_folder_is_0700_or_0711_when_another_user_passes_through(
    tmp_path: Path,
) -> None:
    private_folder(tmp_path / "a" / "b")
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700
    (tmp_path / "open").mkdir(mode=0o755)
    private_folder(tmp_path / "open", traversable=True)
    assert stat.S_IMODE((tmp_path / "open").stat().st_mode) == 0o711


def test_a_benchmark_on_a_fresh_clone_claims_the_state_folder_and_can_be_passed_through(
    tmp_path: Path,
) -> None:
    # a fresh clone: `tipsync bench e2e` makes <state>/bench-e2e before any `stack up`; the
    # state folder is claimed as `stack up` would (or a later `stack up` refused it as not
    # ours), and PostgreSQL's user must reach the private stack below both
    home = tmp_path / "state"
    shared = load_settings({"TIPSYNC_HOME": str(home)})
    prepare_benchmark_folder(shared, home / "bench-e2e")
    assert (home / "tipsync-state.json").is_file()
    LocalStack(shared).check_state_folder()  # what `tipsync stack up` checks first
    (home / "bench-e2e" / "stack").mkdir()
    traversable_path(home / "bench-e2e" / "stack", within=home)
    for folder in (home, home / "bench-e2e", home / "bench-e2e" / "stack"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o711, folder
    # a folder elsewhere (--home) claims nothing
    elsewhere = tmp_path / "elsewhere"
    prepare_benchmark_folder(shared, elsewhere)
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o711
    assert not (elsewhere / "tipsync-state.json").exists()


def test_a_benchmark_refuses_a_state_folder_that_is_not_ours(tmp_path: Path) -> None:
    home = tmp_path / "state"
    home.mkdir()
    (home / "notes.txt").write_text("someone else's")
    with pytest.raises(StackError, match="not a tipsync state folder"):
        prepare_benchmark_folder(load_settings({"TIPSYNC_HOME": str(home)}),
                                 home / "bench-e2e")
    assert not (home / "bench-e2e").exists()


@pytest.mark.parametrize(
    ("postgres_user", "expected"), [(None, 0o700), ("postgres", 0o711)],
    ids=["postgres-runs-as-us", "we-are-root-postgres-runs-as-postgres"],
)
def test_the_state_folder_and_logs_are_private_but_for_postgres_traversal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_user: str | None, expected: int
) -> None:
    monkeypatch.setattr(services, "_unprivileged_user", lambda: postgres_user)
    home = tmp_path / "state"
    home.mkdir(mode=0o755)
    stack = LocalStack(load_settings({"TIPSYNC_HOME": str(home)}))
    stack.check_state_folder()
    stack.protect_state_folder()
    assert stat.S_IMODE(home.stat().st_mode) == expected
    assert stat.S_IMODE((home / "logs").stat().st_mode) == expected


def test_the_tipsync_command_writes_private_files(tmp_path: Path) -> None:
    """``main`` sets the umask 077: a reset run as a command rewrites the marker 0600."""
    home = tmp_path / "state"
    LocalStack(load_settings({"TIPSYNC_HOME": str(home)})).check_state_folder()
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("TIPSYNC_")}
    # Addresses nothing listens on: the reset's `down` has nothing to stop in any case.
    environment.update({
        "TIPSYNC_HOME": str(home),
        "TIPSYNC_KAFKA_BOOTSTRAP": "127.0.0.1:42992",
        "TIPSYNC_REGISTRY_URL": "http://127.0.0.1:42981/apis/ccompat/v7",
        "TIPSYNC_DATABASE_URL": "postgresql://tipsync@127.0.0.1:42932/tipsync",
    })
    result = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "stack", "reset", "--yes"],
        env=environment, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((home / "tipsync-state.json").stat().st_mode) == 0o600


def test_a_state_folder_of_the_plaintext_broker_is_refused_with_the_reset_message(
    tmp_path: Path,
) -> None:
    (tmp_path / "tipsync-state.json").write_text(json.dumps({"format": 1}))
    stack = LocalStack(load_settings({"TIPSYNC_HOME": str(tmp_path)}))
    with pytest.raises(StackError, match="stack reset --yes"):
        stack.check_state_folder()


def test_a_state_folder_holding_only_a_benchmark_s_folder_is_claimed(tmp_path: Path) -> None:
    # left by a benchmark of an earlier tipsync, which made its folder but claimed nothing
    home = tmp_path / "state"
    (home / "bench-e2e" / "stack").mkdir(parents=True)
    (home / "cache").mkdir()
    LocalStack(load_settings({"TIPSYNC_HOME": str(home)})).check_state_folder()
    assert (home / "tipsync-state.json").is_file()
