"""The migration runner's decisions, without a database."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks.migrate import (
    AppliedMigration,
    MigrationError,
    checksum_of,
    parse_migrations,
    plan_migrations,
    shipped_migrations,
)


def test_migrations_are_sorted_by_version_and_non_sql_files_ignored() -> None:
    migrations = parse_migrations(
        [("0002_b.sql", "SELECT 2"), ("__init__.py", ""), ("0001_a.sql", "SELECT 1")]
    )
    assert [m.file_name for m in migrations] == ["0001_a.sql", "0002_b.sql"]


def test_a_malformed_file_name_is_refused_with_the_expected_pattern() -> None:
    with pytest.raises(MigrationError, match=r"1_a\.sql.*NNNN_lower_case_words\.sql"):
        parse_migrations([("1_a.sql", "SELECT 1")])


def test_two_files_with_one_version_are_refused() -> None:
    with pytest.raises(MigrationError, match="share version 0001"):
        parse_migrations([("0001_a.sql", "SELECT 1"), ("0001_b.sql", "SELECT 2")])


def test_only_unapplied_migrations_are_planned() -> None:
    available = parse_migrations([("0001_a.sql", "SELECT 1"), ("0002_b.sql", "SELECT 2")])
    applied = {1: AppliedMigration(1, "a", checksum_of("SELECT 1"))}
    assert [m.version for m in plan_migrations(available, applied)] == [2]


def test_an_edited_released_migration_is_refused_naming_the_file() -> None:
    available = parse_migrations([("0001_a.sql", "SELECT 'edited'")])
    applied = {1: AppliedMigration(1, "a", checksum_of("SELECT 1"))}
    with pytest.raises(MigrationError, match=r"0001_a\.sql was edited after it was applied"):
        plan_migrations(available, applied)


def test_a_database_ahead_of_the_code_is_refused() -> None:
    available = parse_migrations([("0001_a.sql", "SELECT 1")])
    applied = {
        1: AppliedMigration(1, "a", checksum_of("SELECT 1")),
        2: AppliedMigration(2, "future", "x"),
    }
    with pytest.raises(MigrationError, match="0002_future.*does not ship"):
        plan_migrations(available, applied)


def test_the_shipped_migrations_parse_and_start_at_one() -> None:
    versions = [m.version for m in shipped_migrations()]
    assert versions[0] == 1
    assert versions == list(range(1, len(versions) + 1))


def test_shipped_migrations_skip_the_bytecode_folder_an_installed_package_has(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """pip compiles ``sinks/migrations/__init__.py`` into ``__pycache__/`` when it installs
    tipsync (the container image): reading that folder as a file broke `db migrate`."""
    from importlib import resources

    import sinks.migrate as migrate_module

    package = tmp_path / "sinks"
    folder = package / "migrations"
    (folder / "__pycache__").mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / "0001_first.sql").write_text("SELECT 1;\n")
    monkeypatch.setattr(migrate_module.resources, "files",
                        lambda name: resources.files(name) if name != "sinks" else package)
    assert [m.file_name for m in migrate_module.shipped_migrations()] == ["0001_first.sql"]
