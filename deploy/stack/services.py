"""What the three services of the local stack share (PostgreSQL 15, Kafka KRaft, Apicurio
Registry; each in a module of its own: ``postgres``, ``kafka``, ``registry``).

Each service knows how to tell whether it answers (``is_up``), how to start without waiting
(``start``), how to wait until it really answers (``wait``), and how to stop only what we
started (``stop``). A service whose configured address is not on this machine is external:
the stack checks it but never starts or stops it.
"""

from __future__ import annotations

import socket
import subprocess

from deploy.stack.layout import StateLayout
from deploy.stack.processes import read_pid, stop_process
from schemas.config import Settings

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def is_local(host: str | None) -> bool:
    return (host or "127.0.0.1") in LOCAL_HOSTS


def accepts_tcp(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Service:
    name: str
    variable: str

    def __init__(self, settings: Settings, layout: StateLayout) -> None:
        self.settings = settings
        self.layout = layout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def local(self) -> bool:
        raise NotImplementedError

    @property
    def address(self) -> str:
        raise NotImplementedError

    def is_up(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def wait(self) -> None:
        raise NotImplementedError

    def stop(self) -> bool:
        """Stop the process ``up`` started; True when there was one."""
        pid = read_pid(self.layout.pidfile(self.name))
        if pid is None:
            return False
        stop_process(pid, str(self.layout.home))
        self.layout.pidfile(self.name).unlink(missing_ok=True)
        return True

    def pid(self) -> int | None:
        return read_pid(self.layout.pidfile(self.name))


