"""The layout rule: ``schemas`` <- ``producers``, ``streams``, ``sinks`` <- ``deploy``.

The contract imports nothing of ours; each runtime package imports only the contract and
itself (data flows producers -> Kafka -> streams -> Kafka -> sinks, never through imports);
nothing in the runtime imports ``deploy`` (CLI, stack, operations, demo, benchmarks) or
``tests``. Read from the source with ``ast``, so an import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("schemas", "producers", "streams", "sinks", "deploy", "tests")
# package -> the packages of ours it may import
ALLOWED: dict[str, set[str]] = {
    "schemas": {"schemas"},
    "producers": {"schemas", "producers"},
    "streams": {"schemas", "streams"},
    "sinks": {"schemas", "sinks"},
    "deploy": {"schemas", "producers", "streams", "sinks", "deploy"},
}
RUNTIME_MODULE_LINES = 600


def imported_packages(path: Path) -> set[str]:
    """Top-level packages of ours that ``path`` imports, anywhere in the module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names if name.split(".")[0] in OURS)
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_what_the_layout_allows(package: str) -> None:
    breaches = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - ALLOWED[package])
        for path in sorted((ROOT / package).rglob("*.py"))
        if imported_packages(path) - ALLOWED[package]
    }
    assert breaches == {}, (
        f"{package}/ may import only {sorted(ALLOWED[package])}; move the code to the package "
        "that owns it (tooling to deploy/, shared contract to schemas/)"
    )


def test_runtime_modules_stay_small() -> None:
    big = {
        str(path.relative_to(ROOT)): lines
        for package in ("schemas", "producers", "streams", "sinks")
        for path in sorted((ROOT / package).rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > RUNTIME_MODULE_LINES
    }
    assert big == {}, f"split these by responsibility (at most {RUNTIME_MODULE_LINES} lines)"


def test_test_modules_have_unique_basenames() -> None:
    # pytest imports test modules by basename (rootdir-based, no packages): two files of one
    # name stop the whole collection ("import file mismatch"), as it did CI once.
    seen: dict[str, Path] = {}
    twice = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if path.name in seen:
            twice.append(f"{seen[path.name].relative_to(ROOT)} and {path.relative_to(ROOT)}")
        seen.setdefault(path.name, path)
    assert not twice, "rename one of each: " + "; ".join(twice)
