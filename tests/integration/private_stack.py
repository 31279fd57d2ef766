"""A second, private local stack for tests that must stop, restart or fill a stack of their
own: its own state folder and ports, the shared download cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.stack.layout import StateLayout
from deploy.stack.principals import ADMIN, service_secrets
from deploy.stack.tls import tls_files
from schemas.config import load_settings, local_database_url


def tipsync(
    env: dict[str, str], *arguments: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``tipsync`` as a separate process with ``env`` on top of ours."""
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", *arguments],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout,
    )


def private_stack_env(home: Path, port_base: int) -> dict[str, str]:
    """Kafka on port_base+92 (controller +93), registry +81 (management +82), PostgreSQL +32."""
    return {
        "TIPSYNC_HOME": str(home),
        "TIPSYNC_CACHE": str(load_settings().cache),
        "TIPSYNC_KAFKA_BOOTSTRAP": f"127.0.0.1:{port_base + 92}",
        "TIPSYNC_REGISTRY_URL": f"https://127.0.0.1:{port_base + 81}/apis/ccompat/v7",
        "TIPSYNC_DATABASE_URL": local_database_url(home, port_base + 32),
        # each command of the private stack uses its principal's file of that stack
        "TIPSYNC_CLIENT_CONFIG": "",
    }


def registry_admin_config(env: dict[str, str]) -> dict[str, str]:
    """confluent-kafka SchemaRegistryClient settings for the private stack's registry: its
    admin principal and the stack's CA."""
    layout = StateLayout(Path(env["TIPSYNC_HOME"]), Path(env["TIPSYNC_CACHE"]))
    return {
        "url": env["TIPSYNC_REGISTRY_URL"],
        "basic.auth.user.info": f"{ADMIN}:{service_secrets(layout)[ADMIN]}",
        "ssl.ca.location": str(tls_files(layout.secrets).ca),
    }


@contextmanager
def running_private_stack(port_base: int) -> Iterator[dict[str, str]]:
    """Start a private stack, yield its environment, stop it and delete its state."""
    # Inside the shared state folder: PostgreSQL's unprivileged user can traverse it, which
    # it cannot do for pytest's private temporary folders.
    shared_home = load_settings().home
    home = Path(tempfile.mkdtemp(prefix="private-stack-", dir=shared_home))
    env = private_stack_env(home, port_base)
    started = tipsync(env, "stack", "up")
    try:
        assert started.returncode == 0, started.stderr
        yield env
    finally:
        tipsync(env, "stack", "down")
        shutil.rmtree(home, ignore_errors=True)
