"""The Kafka client properties file: one file, read the same way by every tipsync client.

Java properties syntax (``key=value`` or ``key: value``, ``#``/``!`` comments, a trailing
``\\`` continues a line). The keys are those Kafka's Java clients and librdkafka share, plus
the Confluent-style registry keys::

    bootstrap.servers=kafka-1.example:9093,kafka-2.example:9093
    security.protocol=SASL_SSL            # PLAINTEXT (default), SSL, SASL_PLAINTEXT, SASL_SSL
    sasl.mechanism=SCRAM-SHA-512          # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    sasl.username=stream
    sasl.password=...
    ssl.ca.location=ca.pem                # relative paths: from the file's folder
    schema.registry.url=https://registry.example/apis/ccompat/v7
    schema.registry.basic.auth.user.info=stream:...
    schema.registry.ssl.ca.location=ca.pem

Any other Kafka key (``client.id``, ``ssl.certificate.location``, ``linger.ms``...) goes to
librdkafka as it is. ``ClientConfig`` gives each client library what it takes:
``librdkafka()`` (confluent-kafka Producer, Consumer, AdminClient), ``aiokafka()``,
``faust()`` (the stream app's settings) and ``registry()`` (tipsync's registry client).

A file holding a secret must be readable by its owner only (``chmod 600``, as ssh asks of a
key); a file with an unknown ``security.protocol``, credentials that its protocol would not
use, or a password in ``schema.registry.url`` is refused. Messages name the file, the problem
and the fix, never a secret; ``repr`` and ``str`` of a ``ClientConfig`` show no secret.
"""

from __future__ import annotations

import ssl
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
BOOTSTRAP = "bootstrap.servers"
PROTOCOL = "security.protocol"
MECHANISM = "sasl.mechanism"
USERNAME = "sasl.username"
SASL_PASSWORD_KEY = "sasl.password"  # noqa: S105 - a key's name, not a password
CA_LOCATION = "ssl.ca.location"
CERTIFICATE_LOCATION = "ssl.certificate.location"
KEY_LOCATION = "ssl.key.location"
SSL_KEY_PASSWORD_KEY = "ssl.key.password"  # noqa: S105 - a key's name
REGISTRY_PREFIX = "schema.registry."
REGISTRY_URL = "schema.registry.url"
REGISTRY_USER_INFO = "schema.registry.basic.auth.user.info"
REGISTRY_CREDENTIALS_SOURCE = "schema.registry.basic.auth.credentials.source"
REGISTRY_CA = "schema.registry.ssl.ca.location"
REGISTRY_KEYS = (REGISTRY_URL, REGISTRY_USER_INFO, REGISTRY_CREDENTIALS_SOURCE, REGISTRY_CA)
# Keys whose value opens something: a file holding one must be its owner's alone.
SECRET_KEYS = frozenset({SASL_PASSWORD_KEY, SSL_KEY_PASSWORD_KEY, REGISTRY_USER_INFO,
                         "sasl.jaas.config", "ssl.key.pem", "ssl.keystore.password",
                         "sasl.oauthbearer.client.secret"})
# Files the properties name, made absolute from the file's folder.
PATH_KEYS = (CA_LOCATION, CERTIFICATE_LOCATION, KEY_LOCATION, REGISTRY_CA)
# Java-only keys librdkafka does not know, and the keys to use instead.
JAVA_ONLY = {
    "sasl.jaas.config": f"{USERNAME} and {SASL_PASSWORD_KEY}",
    "ssl.truststore.location": f"{CA_LOCATION} (a PEM file)",
    "ssl.keystore.location": f"{CERTIFICATE_LOCATION} and {KEY_LOCATION} (PEM files)",
}
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class ClientConfigError(ValueError):
    """The client properties file cannot be used; the message names the file, the problem
    and the fix, and never a secret."""


@dataclass(frozen=True)
class RegistryConnection:
    """What ``schemas.registry.SchemaRegistry`` needs: the API base URL, the basic
    credentials (or None) and how to verify the registry's certificate."""

    url: str
    auth: httpx.BasicAuth | None = field(default=None, repr=False)
    verify: ssl.SSLContext | bool = True


@dataclass(frozen=True, repr=False)
class ClientConfig:
    """Where the Kafka cluster and the registry are, and how to prove who we are to them.
    ``properties`` holds every Kafka key of the file (paths made absolute) except
    ``bootstrap.servers`` and ``security.protocol``, which have fields of their own."""

    bootstrap: str
    registry_url: str
    protocol: str = "PLAINTEXT"
    properties: tuple[tuple[str, str], ...] = ()
    registry_user_info: str | None = None
    registry_ca: str | None = None
    source: Path | None = None  # the properties file; None: bootstrap and URL only

    @classmethod
    def plain(cls, bootstrap: str, registry_url: str = "") -> ClientConfig:
        """Today's connection without a file: PLAINTEXT Kafka, the registry without auth."""
        return cls(bootstrap=bootstrap, registry_url=registry_url)

    @classmethod
    def of(cls, target: str | ClientConfig) -> ClientConfig:
        """``target`` itself, or a PLAINTEXT config for bootstrap servers given as text."""
        return target if isinstance(target, ClientConfig) else cls.plain(target)

    def __str__(self) -> str:
        """What messages name: the bootstrap servers."""
        return self.bootstrap

    def __repr__(self) -> str:
        kafka = dict(self.properties)
        shown = [f"bootstrap={self.bootstrap!r}", f"protocol={self.protocol!r}"]
        if MECHANISM in kafka:
            shown.append(f"mechanism={kafka[MECHANISM]!r}")
        if USERNAME in kafka:
            shown.append(f"username={kafka[USERNAME]!r}")
        shown.append(f"registry={self.registry_url!r}")
        if self.source is not None:
            shown.append(f"source={str(self.source)!r}")
        return f"ClientConfig({', '.join(shown)})"

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def librdkafka(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Configuration of a confluent-kafka Producer, Consumer or AdminClient; ``extra``
        (a group id, linger, acks...) is the caller's own and wins over the file."""
        return {
            BOOTSTRAP: self.bootstrap, PROTOCOL: self.protocol, **dict(self.properties),
            **(extra or {}),
        }

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context aiokafka (and faust) use: the file's CA, else the system's, and
        the client certificate when the file names one (mTLS)."""
        from aiokafka.helpers import create_ssl_context

        kafka = dict(self.properties)
        return create_ssl_context(
            cafile=kafka.get(CA_LOCATION), certfile=kafka.get(CERTIFICATE_LOCATION),
            keyfile=kafka.get(KEY_LOCATION), password=kafka.get(SSL_KEY_PASSWORD_KEY),
        )

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments of an aiokafka client: bootstrap servers and authentication
        (aiokafka takes SCRAM credentials as ``sasl_plain_*`` too)."""
        kafka = dict(self.properties)
        settings: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap, "security_protocol": self.protocol,
        }
        if self.uses_sasl:
            settings.update(
                sasl_mechanism=kafka[MECHANISM], sasl_plain_username=kafka[USERNAME],
                sasl_plain_password=kafka[SASL_PASSWORD_KEY],
            )
        if self.uses_tls:
            settings["ssl_context"] = self.ssl_context()
        return settings

    def faust(self) -> dict[str, Any]:
        """faust App settings: ``broker`` and ``broker_credentials``. faust-streaming hands
        these to aiokafka through ``credentials_to_aiokafka_auth``: ``SASLCredentials`` with
        an ``ssl_context`` becomes SASL_SSL (without one, SASL_PLAINTEXT);
        ``SSLCredentials(context)`` becomes SSL; no credentials, PLAINTEXT."""
        import faust

        settings: dict[str, Any] = {
            "broker": [f"kafka://{host.strip()}" for host in self.bootstrap.split(",")],
        }
        kafka = dict(self.properties)
        if self.uses_sasl:
            settings["broker_credentials"] = faust.SASLCredentials(
                username=kafka[USERNAME], password=kafka[SASL_PASSWORD_KEY],
                mechanism=kafka[MECHANISM],
                ssl_context=self.ssl_context() if self.uses_tls else None,
            )
        elif self.uses_tls:
            settings["broker_credentials"] = faust.SSLCredentials(self.ssl_context())
        return settings

    def registry(self) -> RegistryConnection:
        """The registry's URL, basic credentials and certificate check for httpx."""
        auth = None
        if self.registry_user_info:
            user, _, password = self.registry_user_info.partition(":")
            auth = httpx.BasicAuth(user, password)
        verify: ssl.SSLContext | bool = True
        if self.registry_ca:
            verify = ssl.create_default_context(cafile=self.registry_ca)
        return RegistryConnection(self.registry_url, auth, verify)

    def confluent_registry(self) -> dict[str, str]:
        """Configuration of confluent-kafka's SchemaRegistryClient (the benchmarks)."""
        settings = {"url": self.registry_url}
        if self.registry_user_info:
            settings["basic.auth.user.info"] = self.registry_user_info
        if self.registry_ca:
            settings["ssl.ca.location"] = self.registry_ca
        return settings


# ---------------------------------------------------------------------------------------------
# Reading the file.


def parse_properties(text: str) -> dict[str, str]:
    """Java properties text -> key -> value (the last of a repeated key wins, as in Java).
    Separators ``=``, ``:`` or blanks; ``\\`` escapes and continues lines."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip()
        if not pending and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2:  # an odd number of backslashes: the line goes on
            pending += line[:-1]
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    found: dict[str, str] = {}
    for line in logical:
        key, value = _split(line)
        found[_unescape(key)] = _unescape(value.strip())
    return found


def _split(line: str) -> tuple[str, str]:
    index = 0
    while index < len(line):
        char = line[index]
        if char == "\\":
            index += 2
            continue
        if char in "=:" or char.isspace():
            rest = line[index:].lstrip()
            if rest[:1] in ("=", ":"):
                rest = rest[1:]
            return line[:index], rest.lstrip()
        index += 1
    return line, ""


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(text: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "\\" or index + 1 == len(text):
            out.append(char)
            index += 1
            continue
        following = text[index + 1]
        if following == "u" and len(text) >= index + 6:
            out.append(chr(int(text[index + 2:index + 6], 16)))
            index += 6
            continue
        out.append(_ESCAPES.get(following, following))
        index += 2
    return "".join(out)


def load_client_config(
    path: Path, *, default_bootstrap: str, default_registry_url: str, named_by: str,
) -> ClientConfig:
    """The client properties file at ``path``, checked; ``bootstrap.servers`` and
    ``schema.registry.url`` fall back to the defaults given (the environment's) when the
    file has none. ``named_by`` says where the path came from, for messages."""
    path = path.expanduser()
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ClientConfigError(
            f"client properties file {path} (from {named_by}) does not exist; check the path"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ClientConfigError(
            f"client properties file {path} (from {named_by}) cannot be read"
            f" ({type(error).__name__}); make it a UTF-8 text file its user can read"
        ) from None
    try:
        found = parse_properties(text)
    except ValueError:
        raise ClientConfigError(
            f"client properties file {path} has a broken \\u escape; write the character"
            " itself (the file is UTF-8)"
        ) from None
    return check_properties(found, path, info.st_mode, default_bootstrap, default_registry_url)


def check_properties(
    found: Mapping[str, str], path: Path, mode: int, default_bootstrap: str,
    default_registry_url: str,
) -> ClientConfig:
    """A ``ClientConfig`` from the parsed file, or ``ClientConfigError`` saying what to fix."""
    where = f"client properties file {path}"
    secrets = sorted(key for key in found if key in SECRET_KEYS and found[key])
    if secrets and mode & 0o077:
        raise ClientConfigError(
            f"{where} holds a secret ({', '.join(secrets)}) but its group or others may read"
            f" it (mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
        )
    for key, instead in JAVA_ONLY.items():
        if key in found:
            raise ClientConfigError(
                f"{where}: {key} is a Java-client key tipsync's clients (librdkafka, aiokafka)"
                f" do not read; use {instead} instead"
            )
    protocol = found.get(PROTOCOL, "PLAINTEXT").strip().upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise ClientConfigError(
            f"{where}: {PROTOCOL}={found[PROTOCOL]!r} is unknown; set one of"
            f" {', '.join(SECURITY_PROTOCOLS)}"
        )
    kafka = {key: value for key, value in found.items()
             if key not in (BOOTSTRAP, PROTOCOL) and not key.startswith(REGISTRY_PREFIX)}
    _check_sasl(kafka, protocol, where)
    _check_tls(kafka, protocol, where)
    for key in PATH_KEYS:
        if key in found and found[key]:
            resolved = _file(found[key], path, key, where)
            if key in kafka:
                kafka[key] = resolved
    unknown = sorted(key for key in found
                     if key.startswith(REGISTRY_PREFIX) and key not in REGISTRY_KEYS)
    if unknown:
        raise ClientConfigError(
            f"{where}: {', '.join(unknown)} not read by tipsync; the registry keys are"
            f" {', '.join(REGISTRY_KEYS)}"
        )
    registry_url = _registry_url(found, where, default_registry_url)
    user_info = found.get(REGISTRY_USER_INFO) or None
    _check_registry_auth(found, registry_url, user_info, where)
    bootstrap = found.get(BOOTSTRAP, "").strip() or default_bootstrap
    return ClientConfig(
        bootstrap=bootstrap, registry_url=registry_url, protocol=protocol,
        properties=tuple(sorted(kafka.items())), registry_user_info=user_info,
        registry_ca=_file(found[REGISTRY_CA], path, REGISTRY_CA, where)
        if found.get(REGISTRY_CA) else None,
        source=path.resolve(),
    )


def _check_sasl(kafka: dict[str, str], protocol: str, where: str) -> None:
    given = sorted(key for key in (MECHANISM, USERNAME, SASL_PASSWORD_KEY) if kafka.get(key))
    if not protocol.startswith("SASL_"):
        if given:
            raise ClientConfigError(
                f"{where}: {', '.join(given)} given but {PROTOCOL}={protocol} sends no"
                f" credentials; set {PROTOCOL}=SASL_SSL (or remove them)"
            )
        return
    missing = [key for key in (MECHANISM, USERNAME, SASL_PASSWORD_KEY) if not kafka.get(key)]
    if missing:
        raise ClientConfigError(
            f"{where}: {PROTOCOL}={protocol} needs {', '.join(missing)}; add"
            f" {MECHANISM}=SCRAM-SHA-512, {USERNAME}=<principal> and {SASL_PASSWORD_KEY}=<secret>"
        )
    mechanism = kafka[MECHANISM].strip().upper()
    if mechanism not in SASL_MECHANISMS:
        raise ClientConfigError(
            f"{where}: {MECHANISM}={kafka[MECHANISM]!r} is not supported; set one of"
            f" {', '.join(SASL_MECHANISMS)}"
        )
    kafka[MECHANISM] = mechanism


def _check_tls(kafka: dict[str, str], protocol: str, where: str) -> None:
    if protocol in ("SSL", "SASL_SSL"):
        return
    given = sorted(key for key in kafka if key.startswith("ssl.") and kafka[key])
    if given:
        upgrade = "SASL_SSL" if protocol == "SASL_PLAINTEXT" else "SSL or SASL_SSL"
        raise ClientConfigError(
            f"{where}: {', '.join(given)} given but {PROTOCOL}={protocol} does not use TLS;"
            f" set {PROTOCOL}={upgrade} (or remove them)"
        )


def _file(value: str, path: Path, key: str, where: str) -> str:
    named = Path(value).expanduser()
    resolved = named if named.is_absolute() else path.parent / named
    if not resolved.is_file():
        raise ClientConfigError(
            f"{where}: {key} names {resolved}, which is not a file; give the PEM file's path"
            " (relative paths start at the properties file's folder)"
        )
    return str(resolved.resolve())


def _registry_url(found: Mapping[str, str], where: str, default: str) -> str:
    url = found.get(REGISTRY_URL, "").strip()
    if not url:
        return default.rstrip("/")
    try:
        parts = urlsplit(url)
        has_userinfo = "@" in parts.netloc
        scheme = parts.scheme
    except ValueError:
        has_userinfo, scheme = False, ""
    if has_userinfo:
        raise ClientConfigError(
            f"{where}: {REGISTRY_URL} carries credentials in the URL, where logs and error"
            f" messages would show them; remove them from the URL and put them in"
            f" {REGISTRY_USER_INFO}=<user>:<password>"
        )
    if scheme not in ("http", "https"):
        raise ClientConfigError(
            f"{where}: {REGISTRY_URL} must start with https:// (or http:// for a local"
            " registry)"
        )
    return url.rstrip("/")


def _check_registry_auth(
    found: Mapping[str, str], url: str, user_info: str | None, where: str,
) -> None:
    source = found.get(REGISTRY_CREDENTIALS_SOURCE, "USER_INFO").strip().upper()
    if source != "USER_INFO":
        raise ClientConfigError(
            f"{where}: {REGISTRY_CREDENTIALS_SOURCE} must be USER_INFO (the only source"
            f" tipsync reads), with {REGISTRY_USER_INFO}=<user>:<password>"
        )
    if user_info is None:
        return
    user, colon, _ = user_info.partition(":")
    if not colon or not user:
        raise ClientConfigError(
            f"{where}: {REGISTRY_USER_INFO} must be <user>:<password>; fix its format"
        )
    parts = urlsplit(url)
    if parts.scheme != "https" and (parts.hostname or "") not in LOOPBACK_HOSTS:
        raise ClientConfigError(
            f"{where}: {REGISTRY_USER_INFO} would go unencrypted to {parts.hostname}; use an"
            f" https:// {REGISTRY_URL}"
        )
