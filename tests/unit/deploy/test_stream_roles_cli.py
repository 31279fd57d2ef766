"""``tipsync stream --role``: which role each worker of a group gets, and the combinations
refused before any worker starts."""

from __future__ import annotations

import argparse

import pytest

from deploy.cli.stream import _worker_arguments, register, run_stream
from streams.options import StreamOptions


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["stream", *argv])


def _role_of(arguments: list[str]) -> str:
    return arguments[arguments.index("--role") + 1]


def test_split_makes_worker_zero_the_resolver_and_the_others_ingest() -> None:
    args = _parse("--role", "split", "--workers", "3")
    assert [_role_of(_worker_arguments(args, index)) for index in range(3)] == [
        "resolve", "ingest", "ingest",
    ]


def test_a_single_role_is_passed_to_every_worker() -> None:
    args = _parse("--role", "ingest", "--workers", "2")
    assert {_role_of(_worker_arguments(args, index)) for index in range(2)} == {"ingest"}


@pytest.mark.parametrize(("argv", "said"), [
    (("--role", "split"), "--role split needs --workers 2 or more"),
    (("--role", "split", "--workers", "2", "--worker-index", "1"), "give its own role"),
    (("--role", "resolve", "--workers", "2"), "runs one worker"),
])
def test_refused_combinations_say_what_to_do(
    argv: tuple[str, ...], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_stream(_parse(*argv)) == 2
    assert said in capsys.readouterr().err


def test_an_unknown_role_is_refused_by_the_options() -> None:
    with pytest.raises(ValueError, match="not one of all, ingest, resolve"):
        StreamOptions(role="everything")
    assert StreamOptions(role="resolve").resolves and not StreamOptions(role="resolve").ingests
    assert StreamOptions(role="ingest").ingests and not StreamOptions(role="ingest").resolves
