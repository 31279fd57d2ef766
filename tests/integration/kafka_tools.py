"""Kafka's own command-line tools (the jars in the download cache), for tests that check the
broker with a client that is not tipsync's: Java's security keys from a client properties
file, and a way to run a tool class."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

from deploy.stack import kafka_classpath
from deploy.stack.artifacts import java_executable
from deploy.stack.clients import java_security_properties
from schemas.client_config import SASL_PASSWORD_KEY, load_client_config
from schemas.config import Settings


def java_client_config(client_file: Path, folder: Path, **overrides: str) -> Path:
    """The Java clients' form of a tipsync client properties file (a 0600 file in
    ``folder``). ``overrides``: ``security_protocol`` (e.g. "SSL": TLS without SASL),
    ``password`` (a wrong one)."""
    client = load_client_config(client_file, default_bootstrap="", default_registry_url="",
                                named_by="the test")
    if "password" in overrides:
        client = replace(client, properties=tuple(
            (key, overrides["password"] if key == SASL_PASSWORD_KEY else value)
            for key, value in client.properties))
    found = java_security_properties(client)
    protocol = overrides.get("security_protocol", client.protocol)
    found["security.protocol"] = protocol
    if not protocol.startswith("SASL_"):
        found = {key: value for key, value in found.items() if not key.startswith("sasl.")}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"java-{client_file.stem}-{len(list(folder.iterdir()))}.properties"
    path.touch(mode=0o600)
    path.write_text("".join(f"{key}={value}\n" for key, value in found.items()),
                    encoding="utf-8")
    return path


def kafka_tool(
    settings: Settings, main_class: str, *arguments: str, timeout: float = 120,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one of Kafka's tools (``org.apache.kafka.tools.ConsoleProducer``...)."""
    return subprocess.run(
        [java_executable(), "-Xmx256m", "-cp", kafka_classpath(settings), main_class,
         *arguments],
        capture_output=True, text=True, timeout=timeout, input=stdin,
    )
