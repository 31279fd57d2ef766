"""The ``tipsync`` entry point (deploy/cli/__init__.py): a command's start imports its own
module only, and the table of commands says what each module registers."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

import pytest

from deploy.cli import COMMAND_MODULES, build_parser, command_modules


@pytest.mark.parametrize("module_name", list(COMMAND_MODULES))
def test_each_module_registers_exactly_the_commands_the_table_gives_it(module_name: str) -> None:
    subparsers = argparse.ArgumentParser().add_subparsers(dest="command")
    importlib.import_module(module_name).register(subparsers)
    assert sorted(subparsers.choices) == sorted(COMMAND_MODULES[module_name])


def test_a_command_registers_its_own_module_and_anything_else_registers_every_one() -> None:
    assert command_modules(["erase", "--source", "x"]) == ["deploy.cli.erase"]
    assert command_modules(["retention"]) == ["deploy.cli.erase"]
    assert command_modules([]) == list(COMMAND_MODULES)  # the help lists every command
    assert command_modules(["--help"]) == list(COMMAND_MODULES)
    assert command_modules(["no-such-command"]) == list(COMMAND_MODULES)  # listed in the error
    every = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert sorted(every) == sorted(name for names in COMMAND_MODULES.values() for name in names)


def test_an_agencys_produce_starts_without_the_stream_app_the_stack_or_the_benchmarks() -> None:
    # A fresh interpreter: what `tipsync produce` imports before it reads its first row.
    script = (
        "import sys\n"
        "from deploy.cli import build_parser\n"
        "build_parser(['produce', '--help'])\n"
        "import json\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=True)
    modules = set(json.loads(result.stdout))
    assert "producers.file_source" in modules
    for heavy in ("faust", "aiohttp", "aiokafka", "deploy.bench", "deploy.stack.stack",
                  "streams.app", "sinks.consumer"):
        assert heavy not in modules, heavy
