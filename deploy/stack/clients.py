"""The Kafka client properties files the local stack issues: one per principal, mode 0600.

``stack up`` writes one for every service principal into ``secrets/clients/<principal>
.properties``; ``tipsync agency enroll`` one per agency into ``secrets/agencies/<id>
.properties`` (and, with ``--out``, a copy to hand over, with the CA beside it). Each holds
the principal's one secret twice: as its SCRAM password and in its registry credentials
(``schemas.client_config`` reads them; Kafka's Java clients and librdkafka read the Kafka
keys as they are).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from deploy.stack.layout import private_folder
from deploy.stack.tls import TlsFiles
from schemas.client_config import (
    CA_LOCATION,
    MECHANISM,
    SASL_PASSWORD_KEY,
    USERNAME,
    ClientConfig,
    parse_properties,
)
from schemas.config import Settings

HANDED_OVER_CA = "tipsync-ca.pem"


def properties_text(settings: Settings, principal: str, secret: str, ca: str) -> str:
    """A client properties file for ``principal`` (``ca``: the CA file, as the file names it)."""
    return "\n".join([
        f"# tipsync client properties of principal '{principal}'. It holds a secret: keep it"
        " mode 0600, never commit or mail it.",
        f"bootstrap.servers={settings.kafka_bootstrap}",
        "security.protocol=SASL_SSL",
        "sasl.mechanism=SCRAM-SHA-512",
        f"sasl.username={principal}",
        f"sasl.password={secret}",
        f"ssl.ca.location={ca}",
        f"schema.registry.url={settings.registry_url}",
        f"schema.registry.basic.auth.user.info={principal}:{secret}",
        f"schema.registry.ssl.ca.location={ca}",
        "",
    ])


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (the folder made 0700 if new)."""
    if not path.parent.exists():
        private_folder(path.parent)
    temporary = path.with_suffix(".tmp")
    temporary.touch(mode=0o600, exist_ok=True)
    temporary.chmod(0o600)
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def write_client_file(
    path: Path, settings: Settings, principal: str, secret: str, tls: TlsFiles
) -> None:
    """The local copy: the CA named by its absolute path in the state folder."""
    text = properties_text(settings, principal, secret, str(tls.ca))
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_private(path, text)


def hand_over(path: Path, settings: Settings, principal: str, secret: str, tls: TlsFiles) -> Path:
    """A copy for another machine: the CA copied beside it and named relatively, so the two
    files travel together. Returns the CA's copy."""
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    ca = path.parent / HANDED_OVER_CA
    shutil.copyfile(tls.ca, ca)
    write_private(path, properties_text(settings, principal, secret, HANDED_OVER_CA))
    return ca


def secret_of(path: Path) -> str | None:
    """The SCRAM password a file issued earlier holds, or None when there is none."""
    if not path.is_file():
        return None
    return parse_properties(path.read_text(encoding="utf-8")).get(SASL_PASSWORD_KEY) or None


SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"


def java_security_properties(client: ClientConfig) -> dict[str, str]:
    """The security keys of ``client`` as Kafka's Java clients name them (Kafka's own tools,
    the benchmarks' Java baseline): the credentials in ``sasl.jaas.config``, the CA as a PEM
    trust store. Holds the password: write it to a 0600 file, never to a command line."""
    kafka = dict(client.properties)
    found = {"bootstrap.servers": client.bootstrap, "security.protocol": client.protocol}
    if client.uses_sasl:
        module = PLAIN_LOGIN_MODULE if kafka[MECHANISM] == "PLAIN" else SCRAM_LOGIN_MODULE
        found["sasl.mechanism"] = kafka[MECHANISM]
        found["sasl.jaas.config"] = (
            f'{module} required username="{kafka[USERNAME]}"'
            f' password="{kafka[SASL_PASSWORD_KEY]}";'
        )
    if client.uses_tls and kafka.get(CA_LOCATION):
        found["ssl.truststore.type"] = "PEM"
        found["ssl.truststore.location"] = kafka[CA_LOCATION]
    return found
