"""schemas/config.py is the one settings surface: the only module that names or reads a
``TIPSYNC_*`` variable, the one list of them (``VARIABLES``) and the README's table of them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from schemas import config
from schemas.config import VARIABLES, Variable

ROOT = Path(__file__).resolve().parents[3]
PREFIX = "TIPSYNC_"
NAME = re.compile(r"TIPSYNC_[A-Z0-9_]+")

# What may mention a variable by its full name: the surface itself, and what people read.
EXCLUDED_FILES = {"schemas/config.py", "README.md"}
EXCLUDED_FOLDERS = (
    "docs/",
    "tests/",
)
# Files read by a program other than tipsync, which cannot import a name from schemas.config:
# they may name a variable, but only one VARIABLES declares.
OTHER_READERS = {
    "deploy/compose.yaml": "docker compose interpolates ${TIPSYNC_HOME:?...}",
    "deploy/image/Containerfile": "the image sets TIPSYNC_HOME for the processes it runs",
    "deploy/kubernetes/60-tipsync.yaml": "Kubernetes gives the pods their TIPSYNC_* variables",
}


def tracked_files() -> list[str]:
    """The files of the checkout (git's list: no caches, no build output, no local state)."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.fail(f"git ls-files failed in {ROOT} ({error}); run the tests from a git checkout")
    return [name for name in listing.decode("utf-8").split("\0") if name]


def checked_files() -> list[str]:
    return [
        name for name in tracked_files()
        if name not in EXCLUDED_FILES and not name.startswith(EXCLUDED_FOLDERS)
    ]


def declared_names() -> list[str]:
    return [variable.name for variable in VARIABLES]


def test_no_module_but_schemas_config_names_a_variable() -> None:
    offenders: list[str] = []
    for name in checked_files():
        path = ROOT / name
        if not path.is_file():
            continue  # deleted in the work tree, not yet in the index
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        for number, line in enumerate(text.splitlines(), start=1):
            if PREFIX not in line:
                continue
            if name in OTHER_READERS and set(NAME.findall(line)) <= set(declared_names()):
                continue
            offenders.append(f"{name}:{number}: {line.strip()}")
    assert not offenders, (
        "these lines name a TIPSYNC_ variable outside schemas/config.py; import its constant"
        " (e.g. config.DATABASE_URL) or its typed reader from schemas.config instead:\n"
        + "\n".join(offenders)
    )


def test_the_scan_sees_the_modules_it_guards() -> None:
    checked = set(checked_files())
    assert {"deploy/stack/services.py", "schemas/topics.py", "sinks/metrics.py"} <= checked
    assert "deploy/compose.yaml" in checked
    assert not any(name.startswith(EXCLUDED_FOLDERS) for name in checked)
    assert not checked & EXCLUDED_FILES


def test_every_variable_is_declared_once_with_its_name_constant() -> None:
    names = declared_names()
    assert len(names) == len(set(names)), "a variable is declared twice in VARIABLES"
    assert all(name.startswith(PREFIX) and NAME.fullmatch(name) for name in names)
    constants = {
        value for key, value in vars(config).items()
        if key.isupper() and isinstance(value, str) and value.startswith(PREFIX)
    }
    assert constants == set(names), "every name constant has its VARIABLES entry and back"
    assert all(variable.default_text and variable.meaning for variable in VARIABLES)


def readme_configuration_rows() -> list[tuple[str, str, str]]:
    """(name, default, meaning) of the Configuration table rows that list a variable."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Configuration\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert section, "README.md has no '## Configuration' section"
    row = re.compile(r"^\| `(TIPSYNC_[A-Z0-9_]+)` \| (.*?) \| (.*?) \|$")
    return [
        (match[1], match[2], match[3])
        for line in section[1].splitlines()
        if (match := row.match(line))
    ]


def readme_row(variable: Variable) -> str:
    return f"| `{variable.name}` | {variable.default_text} | {variable.meaning} |"


def test_the_readme_configuration_table_lists_exactly_the_declared_variables() -> None:
    rows = readme_configuration_rows()
    expected = [(v.name, v.default_text, v.meaning) for v in VARIABLES]
    assert [name for name, _, _ in rows] == declared_names(), (
        "README.md's Configuration table must list VARIABLES, in order; its rows should be:\n"
        + "\n".join(readme_row(variable) for variable in VARIABLES)
    )
    for found, wanted, variable in zip(rows, expected, VARIABLES, strict=True):
        assert found == wanted, (
            f"README.md's row of {variable.name} should be:\n{readme_row(variable)}"
        )


def test_the_declared_defaults_are_the_ones_the_code_uses() -> None:
    from streams.metrics import DEFAULT_METRICS_PORT as STREAM_PORT
    from streams.snapshot import SnapshotPolicy

    assert STREAM_PORT == config.DEFAULT_STREAM_METRICS_PORT
    policy = SnapshotPolicy()
    assert policy.every_records == config.DEFAULT_SNAPSHOT_EVERY_RECORDS
    assert policy.every_seconds == config.DEFAULT_SNAPSHOT_EVERY_SECONDS
    assert config.stream_metrics_port(None, {}) == 19100
    assert config.sink_metrics_port(None, {}) == 19101
    assert config.operations_metrics_port(None, {}) == 19102
    thirty_days = 30 * 86_400_000
    assert config.TopicSettings.from_environment({}) == config.TopicSettings(
        6, config.CLUSTER_DEFAULT_REPLICATION, thirty_days, thirty_days
    )


# --------------------------------------------------------------------------- typed readers


def test_resolve_settings_read_the_model_and_the_snapshot_cadence() -> None:
    assert config.resolve_settings({}) == config.ResolveSettings()
    assert config.resolve_settings({}).options() == {}
    read = config.resolve_settings({
        config.RESOLVE_MODEL: "/models/person.json",
        config.RESOLVE_SNAPSHOT_RECORDS: "0",
        config.RESOLVE_SNAPSHOT_SECONDS: "60",
    })
    assert read.options() == {
        "model_path": "/models/person.json",
        "snapshot_every_records": 0,
        "snapshot_every_seconds": 60,
    }


@pytest.mark.parametrize(
    "name", [config.RESOLVE_SNAPSHOT_RECORDS, config.RESOLVE_SNAPSHOT_SECONDS]
)
def test_resolve_settings_refuse_words_as_the_stream_does(name: str) -> None:
    from streams.app import StreamOptions

    environment = {name: "many"}
    with pytest.raises(ValueError) as refused:
        config.resolve_settings(environment)
    with pytest.raises(ValueError) as stream_refused:
        StreamOptions.from_environment(environment)
    assert str(refused.value) == str(stream_refused.value)
    assert str(refused.value) == (
        f"{name}='many' is not a whole number; set e.g. 100000 records or 900 seconds"
        " (TIPSYNC_RESOLVE_SNAPSHOT_RECORDS=0 turns snapshots off)"
    )


def test_the_stack_programs_are_read_when_asked_for() -> None:
    assert config.postgres_bin({}) == Path("/usr/lib/postgresql/15/bin")
    assert config.postgres_bin({config.POSTGRES_BIN: "/opt/pg/bin"}) == Path("/opt/pg/bin")
    assert config.java_home({}) is None
    assert config.java_home({config.JAVA_HOME: "/opt/jdk-21"}) == Path("/opt/jdk-21")


def test_postgres_bin_is_not_fixed_at_import(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from deploy.stack.layout import StackError, StateLayout
    from deploy.stack.postgres import Postgres

    settings = config.load_settings({config.HOME: str(tmp_path)})
    postgres = Postgres(settings, StateLayout.of(settings))
    monkeypatch.setenv(config.POSTGRES_BIN, str(tmp_path / "no-postgres"))
    expected = (
        f"not found at {re.escape(str(tmp_path / 'no-postgres'))}\\..*or point"
        f" {config.POSTGRES_BIN} at its bin folder"
    )
    with pytest.raises(StackError, match=expected):
        postgres._binary("initdb")


def test_the_agency_registry_file_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from schemas.agencies import default_agencies_path

    assert config.agencies_file({}) is None
    assert config.agencies_file({config.AGENCIES: "~/agencies.yaml"}) == (
        Path.home() / "agencies.yaml"
    )
    monkeypatch.delenv(config.AGENCIES, raising=False)
    assert default_agencies_path() == ROOT / "deploy" / "agencies.yaml"
    monkeypatch.setenv(config.AGENCIES, str(tmp_path / "agencies.yaml"))
    assert default_agencies_path() == tmp_path / "agencies.yaml"


def test_connection_environment_gives_a_child_the_same_settings(tmp_path: Path) -> None:
    settings = config.load_settings({
        config.HOME: str(tmp_path / "home"),
        config.KAFKA_BOOTSTRAP: "127.0.0.1:30092",
        config.REGISTRY_URL: "http://127.0.0.1:30081/apis/ccompat/v7",
    })
    environment = config.connection_environment(settings)
    assert set(environment) == {
        config.HOME, config.CACHE, config.KAFKA_BOOTSTRAP, config.REGISTRY_URL,
        config.DATABASE_URL, config.CLIENT_CONFIG,
    }
    assert environment[config.CLIENT_CONFIG] == ""  # none: a child must not inherit one
    assert config.load_settings(environment) == settings
