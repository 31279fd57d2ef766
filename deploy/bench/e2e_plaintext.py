"""``tipsync bench e2e --plaintext``: the same backfill again with Kafka in PLAINTEXT, for
issue 14's figure (what TLS and SASL cost end to end), in the same run.

After the secure run, the private stack is wiped and brought up again, its Kafka restarted
with one more listener, PLAINTEXT on the Kafka port + 3 on loopback, and an ACL letting
``User:ANONYMOUS`` use topics and groups (``deploy.bench.security``'s trick: both runs pass
the same authorizer). Every process of the second backfill (producers, stream app, sink, lag
checks) takes one client file naming that listener; the registry and PostgreSQL stay as they
are (HTTPS with basic authentication, TLS), so only Kafka's transport differs. The listener
lives only in the private stack's configuration, wiped at the end of the run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deploy.bench.security import PLAINTEXT_OFFSET, open_plaintext_listener
from deploy.demo.generate import Manifest
from deploy.operations.drive import prepare, say
from deploy.operations.supervisor import Pipeline
from deploy.stack.clients import write_private
from deploy.stack.stack import LocalStack
from schemas import config
from schemas.client_config import REGISTRY_CA, REGISTRY_URL, REGISTRY_USER_INFO
from schemas.config import Settings, load_settings

PLAINTEXT_FILE = "plaintext.properties"


def plaintext_client_file(settings: Settings, port: int) -> Path:
    """A client file naming the PLAINTEXT listener, with the registry's URL, credentials and
    CA of this process's own file (0600: it holds the registry's password)."""
    client = settings.client
    lines = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "PLAINTEXT",
             REGISTRY_URL: client.registry_url}
    if client.registry_user_info:
        lines[REGISTRY_USER_INFO] = client.registry_user_info
    if client.registry_ca:
        lines[REGISTRY_CA] = client.registry_ca
    path = settings.home / PLAINTEXT_FILE
    write_private(path, "".join(f"{key}={value}\n" for key, value in lines.items()))
    return path


def plaintext_backfill(
    settings: Settings, manifest: Manifest, kafka_port: int, timeout: float,
    stream_arguments: Sequence[str], sink_arguments: Sequence[str],
) -> dict[str, Any]:
    from deploy.bench.e2e import backfill, wait_until_consuming, warm_up

    LocalStack(settings).reset()
    # Read again: the wiped stack comes up with new credentials, and ``Settings.client`` keeps
    # the file it first read (the admin's old SCRAM password: every admin request then waits
    # for a controller it cannot authenticate to, and times out).
    settings = load_settings()
    prepare(settings)
    port = kafka_port + PLAINTEXT_OFFSET
    open_plaintext_listener(settings, port)
    path = plaintext_client_file(settings, port)
    previous = os.environ.get(config.CLIENT_CONFIG)
    os.environ[config.CLIENT_CONFIG] = str(path)
    try:
        plain = load_settings()
        say(f"second backfill with Kafka in PLAINTEXT on 127.0.0.1:{port} (every process uses "
            f"{path})")
        warm_up(plain, stream_arguments)
        with Pipeline(plain, stream_arguments, sink_arguments) as pipeline:
            ready = wait_until_consuming(plain, pipeline)
            say(f"stream and sink consuming after {ready:.1f}s")
            return backfill(plain, manifest, pipeline, timeout)
    finally:
        if previous is None:
            os.environ.pop(config.CLIENT_CONFIG, None)
        else:
            os.environ[config.CLIENT_CONFIG] = previous
