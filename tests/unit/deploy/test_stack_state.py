"""The stack's safety checks that need nothing running: ports, state folders, settings."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from deploy.stack.layout import StackError
from deploy.stack.processes import require_free_port
from deploy.stack.stack import LocalStack
from schemas.config import load_settings


def test_settings_default_to_the_local_stack(tmp_path: Path) -> None:
    settings = load_settings({"TIPSYNC_HOME": str(tmp_path)})
    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert settings.registry_url == "http://127.0.0.1:18081/apis/ccompat/v7"
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
    assert json.loads((home / "tipsync-state.json").read_text()) == {"format": 1}
    (home / "cache").mkdir()
    (home / "cache" / "kafka.jar").write_text("jar")
    (home / "kafka").mkdir()
    stack.reset()
    assert sorted(path.name for path in home.iterdir()) == ["cache"]
    assert (home / "cache" / "kafka.jar").exists()
