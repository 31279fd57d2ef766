"""tipsync produce --sql: where the checkpoint is kept, and that no password is kept there."""

from __future__ import annotations

from pathlib import Path

from deploy.cli.produce import _adopt_checkpoint_named_with_a_password, _legacy_source_name
from producers.checkpoint import CheckpointStore, source_folder
from producers.sql_source import dsn_without_secrets

SECRET = "Pw-7f3"


def test_a_checkpoint_named_with_a_password_moves_to_the_name_without_it(tmp_path: Path) -> None:
    dsn = f"host=db.local dbname=travel password={SECRET}"
    legacy_name = f"{_legacy_source_name(dsn)} public.traveller"
    assert SECRET in legacy_name  # what earlier versions wrote
    legacy = source_folder(tmp_path, "immigration", "person", legacy_name)
    store = CheckpointStore(legacy, legacy_name)
    store.save([], {"watermark": ["2024-05-01", "7"]})
    store.close()

    name = f"{dsn_without_secrets(dsn)} public.traveller"
    folder = source_folder(tmp_path, "immigration", "person", name)
    _adopt_checkpoint_named_with_a_password(legacy, folder, name)
    store = CheckpointStore(folder, name)
    assert store.state("watermark") == ["2024-05-01", "7"]  # the same checkpoint
    store.close()
    assert not legacy.exists()
    assert folder == source_folder(
        tmp_path, "immigration", "person", "host=db.local dbname=travel public.traveller"
    )
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_legacy_folder_beside_a_current_one_loses_the_password(tmp_path: Path) -> None:
    legacy, folder = tmp_path / "legacy", tmp_path / "current"
    legacy.mkdir()
    folder.mkdir()
    (legacy / "source.txt").write_text(f"host=h password={SECRET} t\n")
    _adopt_checkpoint_named_with_a_password(legacy, folder, "host=h t")
    assert (legacy / "source.txt").read_text() == "host=h t\n"


def test_a_uri_without_a_password_keeps_the_folder_it_always_had() -> None:
    uri = "postgresql://tipsync@127.0.0.1:15432/tipsync?passfile=/x/pgpass"
    assert dsn_without_secrets(uri) == _legacy_source_name(uri) == uri
    with_password = f"postgresql://tipsync:{SECRET}@127.0.0.1:15432/tipsync?passfile=/x/pgpass"
    assert dsn_without_secrets(with_password) == _legacy_source_name(with_password) == uri
