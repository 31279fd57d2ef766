"""The central pipeline's long-running processes, supervised together.

``tipsync run`` keeps the stream processors and the sink running in the foreground on one
machine; the demo and the end-to-end benchmark start the same two processes in the
background. Each runs as its own ``tipsync stream`` / ``tipsync sink`` process, exactly as an
operator would run them on separate machines, with its output in a log file.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from deploy.stack.layout import StateLayout
from deploy.stack.processes import start_background, tail
from schemas.config import Settings, load_settings

STOP_TIMEOUT_SECONDS = 30.0


class PipelineError(Exception):
    """A pipeline process failed; the message names it and shows its log's last lines."""


@dataclass
class PipelineProcess:
    name: str
    arguments: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str] | None = None) -> None:
        self.process = start_background(
            [sys.executable, "-m", "deploy.cli", *self.arguments],
            log=self.log, env={**os.environ, **(env or {})},
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM (a clean shutdown commits what was processed), then SIGKILL."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@dataclass
class Pipeline:
    """``tipsync stream`` + ``tipsync sink``, started and stopped together."""

    settings: Settings
    stream_arguments: Sequence[str] = ()
    sink_arguments: Sequence[str] = ()
    processes: list[PipelineProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        layout = StateLayout.of(self.settings)
        self.processes = [
            PipelineProcess("stream", ["stream", *self.stream_arguments], layout.log("stream")),
            PipelineProcess("sink", ["sink", *self.sink_arguments], layout.log("sink")),
        ]

    def start(self) -> None:
        for process in self.processes:
            process.start()

    def check(self) -> None:
        for process in self.processes:
            if process.process is not None and not process.alive():
                raise PipelineError(
                    f"tipsync {process.name} exited with code {process.process.returncode}. "
                    f"Last lines of {process.log}:\n{tail(process.log)}"
                )

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def __enter__(self) -> Pipeline:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run_pipeline(args: argparse.Namespace) -> int:
    settings = load_settings()
    pipeline = Pipeline(settings)
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    pipeline.start()
    print(
        "tipsync run: stream and sink started; logs in "
        f"{settings.home / 'logs'} (stream.log, sink.log). Ctrl-C stops both.",
        flush=True,
    )
    try:
        while not stopping:
            pipeline.check()
            time.sleep(0.5)
    except PipelineError as error:
        print(f"tipsync run: {error}", file=sys.stderr)
        pipeline.stop()
        return 1
    print("tipsync run: stopping stream and sink…", flush=True)
    pipeline.stop()
    codes = {process.name: process.process.returncode for process in pipeline.processes
             if process.process is not None}
    print(f"tipsync run: stopped ({', '.join(f'{n} exit {c}' for n, c in codes.items())})")
    return 0
