"""The one metrics-port rule every tipsync process uses (stream, sink, monitor)."""

import argparse

import pytest

from deploy.cli.operations import monitor_command
from schemas.config import metrics_port

VARIABLE = "TIPSYNC_TEST_METRICS_PORT"


def test_option_then_environment_then_default() -> None:
    assert metrics_port(VARIABLE, 19500, None, {}) == 19500
    assert metrics_port(VARIABLE, 19500, None, {VARIABLE: " 19600 "}) == 19600
    assert metrics_port(VARIABLE, 19500, 19700, {VARIABLE: "19600"}) == 19700


def test_zero_turns_the_endpoint_off() -> None:
    assert metrics_port(VARIABLE, 19500, 0, {}) is None
    assert metrics_port(VARIABLE, 19500, None, {VARIABLE: "0"}) is None


def test_a_bad_value_names_the_variable_and_the_fix() -> None:
    with pytest.raises(ValueError, match=rf"{VARIABLE}='nineteen' is not a port number.*19500"):
        metrics_port(VARIABLE, 19500, None, {VARIABLE: "nineteen"})
    with pytest.raises(ValueError, match="outside 0..65535"):
        metrics_port(VARIABLE, 19500, 70000, {})


def test_monitor_refuses_a_bad_port_before_connecting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIPSYNC_OPERATIONS_METRICS_PORT", "ninety")
    assert monitor_command(argparse.Namespace(port=None, group=[], group_prefix=None)) == 2
    assert "TIPSYNC_OPERATIONS_METRICS_PORT='ninety' is not a port number" in (
        capsys.readouterr().err
    )
    assert monitor_command(argparse.Namespace(port=0, group=[], group_prefix=None)) == 2
    assert "port 0 turns the metrics endpoint off" in capsys.readouterr().err


def test_the_stream_worker_follows_the_same_rule() -> None:
    from streams.metrics import DEFAULT_METRICS_PORT
    from streams.options import StreamOptions

    assert StreamOptions.from_environment({}).metrics_port == DEFAULT_METRICS_PORT
    variable = "TIPSYNC_STREAM_METRICS_PORT"
    assert StreamOptions.from_environment({variable: "19400"}).metrics_port == 19400
    assert StreamOptions.from_environment({variable: "0"}).metrics_port is None
    with pytest.raises(ValueError, match=rf"{variable}='x' is not a port number"):
        StreamOptions.from_environment({variable: "x"})
    with pytest.raises(ValueError, match="outside 0..65535"):
        StreamOptions.from_environment({variable: "99999"})
