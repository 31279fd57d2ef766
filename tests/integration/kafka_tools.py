"""Kafka's own command-line tools (the jars in the download cache), for tests that check the
broker with a client that is not tipsync's: Java's security keys from a client properties
file, and a way to run a tool class."""

from __future__ import annotations

import subprocess
from pathlib import Path

from deploy.stack import kafka_classpath
from deploy.stack.artifacts import java_executable
from schemas.client_config import parse_properties
from schemas.config import Settings

SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"


def java_client_config(client_file: Path, folder: Path, **overrides: str) -> Path:
    """The Java clients' form of a tipsync client properties file: the same protocol and
    mechanism, the credentials in ``sasl.jaas.config`` and the CA as a PEM trust store.
    ``overrides`` replace keys (``security_protocol="PLAINTEXT"``, ``password="wrong"``)."""
    found = parse_properties(client_file.read_text(encoding="utf-8"))
    if not Path(found["ssl.ca.location"]).is_absolute():
        found["ssl.ca.location"] = str(client_file.parent / found["ssl.ca.location"])
    username = overrides.get("username", found.get("sasl.username", ""))
    password = overrides.get("password", found.get("sasl.password", ""))
    protocol = overrides.get("security_protocol", found["security.protocol"])
    lines = [f"security.protocol={protocol}"]
    if protocol.startswith("SASL_") and not overrides.get("no_credentials"):
        lines += [
            f"sasl.mechanism={found['sasl.mechanism']}",
            f'sasl.jaas.config={SCRAM_MODULE} required username="{username}"'
            f' password="{password}";',
        ]
    if protocol.endswith("SSL"):
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={found['ssl.ca.location']}"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"java-{client_file.stem}-{len(list(folder.iterdir()))}.properties"
    path.touch(mode=0o600)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
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
