"""Starting, finding and stopping the stack's own processes.

A pid file alone is not proof that a process is ours (pids are reused), so every process
``stack up`` starts carries the state folder's path on its command line or in its working
directory, and ``down`` only signals a pid whose /proc entry still shows it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from deploy.stack.layout import PRIVATE_UMASK, StackError


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def require_free_port(port: int, service: str, variable: str) -> None:
    if not port_is_free(port):
        raise StackError(
            f"port {port} on 127.0.0.1 is already in use, so {service} cannot start there. "
            f"Stop whatever listens on it (e.g. `ss -ltnp | grep :{port}`) or move {service} "
            f"to another port with {variable}."
        )


def tail(path: Path, lines: int = 25) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(content[-lines:])


def process_mentions(pid: int, marker: str) -> bool:
    """Whether process ``pid`` is alive and its command line or cwd mentions ``marker``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    if marker in cmdline:
        return True
    try:
        return marker in os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False


def read_pid(pidfile: Path) -> int | None:
    try:
        text = pidfile.read_text().split()
    except FileNotFoundError:
        return None
    return int(text[0]) if text and text[0].isdigit() else None


def start_background(
    command: Sequence[str],
    *,
    log: Path,
    pidfile: Path | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-running process detached from our session, its output in ``log``, its pid
    in ``pidfile`` when given (so a later ``tipsync`` can find and stop it)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as log_file:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=PRIVATE_UMASK,  # its files are private even when not started by `tipsync`
        )
    if pidfile is not None:
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        pidfile.write_text(f"{process.pid}\n")
    return process


def stop_process(pid: int, marker: str, timeout: float = 30.0) -> None:
    """SIGTERM, wait, then SIGKILL: only if the pid still belongs to us."""
    if not process_mentions(pid, marker):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_mentions(pid, marker) or _is_zombie(pid):
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def kill_process(pid: int, marker: str) -> None:
    """SIGKILL at once (no chance to shut down cleanly): only if the pid still belongs to
    us."""
    if process_mentions(pid, marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return


def _is_zombie(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, IndexError):
        return True
    return fields[0] == "Z"


def wait_until(
    check: Callable[[], bool],
    *,
    service: str,
    timeout: float,
    process: subprocess.Popen[bytes] | None,
    log: Path,
    also_watched: Sequence[tuple[subprocess.Popen[bytes], Path]] = (),
) -> None:
    """Poll ``check()`` until it is true; fail with the log's tail if the process (or one of
    ``also_watched``, each with its log: the other nodes of a Kafka cluster) dies."""
    watched = [*([(process, log)] if process is not None else []), *also_watched]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for started, its_log in watched:
            if started.poll() is not None:
                raise StackError(
                    f"{service} exited with code {started.returncode} while starting. "
                    f"Last lines of {its_log}:\n{tail(its_log)}"
                )
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - any failure to answer means "not ready yet"
            pass
        time.sleep(0.5)
    raise StackError(
        f"{service} did not answer within {timeout:.0f}s. Last lines of {log}:\n{tail(log)}"
    )
