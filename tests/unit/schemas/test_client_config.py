"""The Kafka client properties file (schemas.client_config): parsing, what each client library
is given, the refusals, and that no secret ever shows in a message or a repr."""

from __future__ import annotations

import inspect
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import certifi
import faust
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from schemas import config
from schemas.client_config import (
    ClientConfig,
    ClientConfigError,
    load_client_config,
    parse_properties,
)
from schemas.registry import SchemaRegistry

SECRET = "Sup3r-S3cret-Passw0rd"  # noqa: S105 - a test value that must never be shown
REGISTRY_SECRET = "R3gistry-S3cret"  # noqa: S105
LOCAL = "https://127.0.0.1:18081/apis/ccompat/v7"


def write(folder: Path, text: str, mode: int = 0o600, name: str = "client.properties") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def load(path: Path) -> ClientConfig:
    return load_client_config(
        path, default_bootstrap="127.0.0.1:19092", default_registry_url=LOCAL,
        named_by="the test",
    )


def sasl_ssl_file(folder: Path) -> Path:
    ca = folder / "ca.pem"
    ca.write_bytes(Path(certifi.where()).read_bytes())
    return write(folder, f"""
# the stream service's identity
bootstrap.servers = kafka-1.example:9093,kafka-2.example:9093
security.protocol=sasl_ssl
sasl.mechanism=SCRAM-SHA-512
sasl.username=stream
sasl.password={SECRET}
ssl.ca.location=ca.pem
client.id: tipsync-stream
schema.registry.url=https://registry.example/apis/ccompat/v7
schema.registry.basic.auth.user.info=stream:{REGISTRY_SECRET}
schema.registry.ssl.ca.location=ca.pem
""")


# --------------------------------------------------------------------------- parsing


def test_java_properties_syntax() -> None:
    text = (
        "# comment\n! also a comment\n\n"
        "a=1\n  b : 2\nc 3\nd=x\\\n   y\ne=tab\\tand\\u00e9\nf=\na=last wins\n"
        "key\\=with\\:separators=value\n"
    )
    assert parse_properties(text) == {
        "a": "last wins", "b": "2", "c": "3", "d": "xy", "e": "tab\tand\u00e9", "f": "",
        "key=with:separators": "value",
    }


def test_without_any_file_a_command_names_the_file_it_needs(tmp_path: Path) -> None:
    settings = config.load_settings({config.HOME: str(tmp_path)})
    with pytest.raises(ClientConfigError) as refused:
        settings.client  # noqa: B018 - reading it is the act
    message = str(refused.value)
    assert str(tmp_path / "secrets" / "clients" / "admin.properties") in message
    assert config.CLIENT_CONFIG in message and "--client-config" in message
    assert "stack up" in message


@pytest.fixture
def stream_principal() -> Iterator[None]:
    config.use_local_principal("stream")
    try:
        yield
    finally:
        config.use_local_principal(config.DEFAULT_PRINCIPAL)


def test_a_command_uses_its_principals_local_file_which_never_travels(
    tmp_path: Path, stream_principal: None
) -> None:
    local = tmp_path / "secrets" / "clients" / "stream.properties"
    local.parent.mkdir(parents=True)
    sasl_ssl_file(local.parent).rename(local)
    settings = config.load_settings({config.HOME: str(tmp_path),
                                     config.KAFKA_BOOTSTRAP: "127.0.0.1:30092"})
    assert settings.client_properties is None
    assert settings.client.protocol == "SASL_SSL"
    assert settings.client.source == local
    # the variables say where the local stack is; the file says who we are
    assert settings.client.bootstrap == "127.0.0.1:30092"
    assert config.connection_environment(settings)[config.CLIENT_CONFIG] == ""
    config.use_local_principal("police-ctu", agency=True)
    agency = config.load_settings({config.HOME: str(tmp_path)})
    assert agency.local_client_file == tmp_path / "secrets" / "agencies" / "police-ctu.properties"


def test_settings_built_in_code_without_a_file_connect_plainly() -> None:
    settings = config.Settings(Path("/h"), Path("/c"), "127.0.0.1:30092", LOCAL, "postgresql://x")
    assert settings.client_properties is None
    assert settings.client.librdkafka({"group.id": "g"}) == {
        "bootstrap.servers": "127.0.0.1:30092", "security.protocol": "PLAINTEXT", "group.id": "g",
    }
    assert settings.client.aiokafka() == {
        "bootstrap_servers": "127.0.0.1:30092", "security_protocol": "PLAINTEXT",
    }
    assert settings.client.faust() == {"broker": ["kafka://127.0.0.1:30092"]}
    assert settings.client.registry().url == LOCAL
    assert settings.client.registry().auth is None
    assert ClientConfig.of("h:1").librdkafka() == {
        "bootstrap.servers": "h:1", "security.protocol": "PLAINTEXT",
    }


# --------------------------------------------------------------------------- mapping


def test_sasl_ssl_for_librdkafka(tmp_path: Path) -> None:
    client = load(sasl_ssl_file(tmp_path))
    assert client.protocol == "SASL_SSL"
    produced = client.librdkafka({"client.id": "mine", "acks": "all"})
    assert produced == {
        "bootstrap.servers": "kafka-1.example:9093,kafka-2.example:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "stream",
        "sasl.password": SECRET,
        "ssl.ca.location": str((tmp_path / "ca.pem").resolve()),
        "client.id": "mine",  # the caller's own setting wins over the file
        "acks": "all",
    }
    # librdkafka knows every key (an unknown one raises here)
    from confluent_kafka.admin import AdminClient

    AdminClient({**produced, "bootstrap.servers": "127.0.0.1:9"})


def test_sasl_ssl_for_aiokafka(tmp_path: Path) -> None:
    settings = load(sasl_ssl_file(tmp_path)).aiokafka()
    context = settings.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    assert settings == {
        "bootstrap_servers": "kafka-1.example:9093,kafka-2.example:9093",
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "stream", "sasl_plain_password": SECRET,
    }
    accepted = inspect.signature(AIOKafkaConsumer.__init__).parameters
    assert set(settings) | {"ssl_context"} <= set(accepted)


def test_faust_gets_sasl_ssl_the_way_its_aiokafka_driver_reads_it(tmp_path: Path) -> None:
    settings = load(sasl_ssl_file(tmp_path)).faust()
    assert settings["broker"] == ["kafka://kafka-1.example:9093", "kafka://kafka-2.example:9093"]
    credentials = settings["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert SECRET not in repr(credentials)
    auth = dict(credentials_to_aiokafka_auth(credentials))
    assert isinstance(auth.pop("ssl_context"), ssl.SSLContext)
    assert auth == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "stream", "sasl_plain_password": SECRET,
    }


def test_faust_ssl_and_sasl_plaintext(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_bytes(Path(certifi.where()).read_bytes())
    tls = load(write(tmp_path, "security.protocol=SSL\nssl.ca.location=ca.pem\n", 0o644))
    auth = dict(credentials_to_aiokafka_auth(tls.faust()["broker_credentials"]))
    assert auth["security_protocol"] == "SSL"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    sasl = load(write(tmp_path, (
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=plain\n"
        f"sasl.username=u\nsasl.password={SECRET}\n"
    )))
    auth = dict(credentials_to_aiokafka_auth(sasl.faust()["broker_credentials"]))
    assert auth == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "u", "sasl_plain_password": SECRET, "ssl_context": None,
    }
    assert "ssl_context" not in sasl.aiokafka()


def test_registry_gets_basic_auth_and_the_ca(tmp_path: Path) -> None:
    client = load(sasl_ssl_file(tmp_path))
    connection = client.registry()
    assert connection.url == "https://registry.example/apis/ccompat/v7"
    assert isinstance(connection.auth, httpx.BasicAuth)
    assert isinstance(connection.verify, ssl.SSLContext)
    assert SECRET not in repr(connection) and REGISTRY_SECRET not in repr(connection)
    request = next(connection.auth.auth_flow(httpx.Request("GET", connection.url)))
    assert request.headers["Authorization"].startswith("Basic ")
    with SchemaRegistry(connection) as registry:
        assert registry.url == connection.url
        assert registry._client.auth is connection.auth
    assert client.confluent_registry() == {
        "url": connection.url, "basic.auth.user.info": f"stream:{REGISTRY_SECRET}",
        "ssl.ca.location": str((tmp_path / "ca.pem").resolve()),
    }


def test_a_plaintext_file_without_secrets_may_be_world_readable(tmp_path: Path) -> None:
    client = load(write(tmp_path, "bootstrap.servers=127.0.0.1:19092\n"
                                  f"schema.registry.url={LOCAL}/\n", 0o644))
    assert (client.bootstrap, client.registry_url, client.protocol) == (
        "127.0.0.1:19092", LOCAL, "PLAINTEXT"
    )


# --------------------------------------------------------------------------- refusals


REFUSED = {
    "unknown protocol": (
        f"security.protocol=SASL_TLS\nsasl.password={SECRET}\n", 0o600, "is unknown; set one of"
    ),
    "password in the registry URL": (
        f"schema.registry.url=https://stream:{SECRET}@registry.example/apis/ccompat/v7\n",
        0o600, "carries credentials in the URL",
    ),
    "no password for SASL": (
        "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=u\n", 0o600,
        "needs sasl.password",
    ),
    "unsupported mechanism": (
        f"security.protocol=SASL_SSL\nsasl.mechanism=GSSAPI\nsasl.username=u\n"
        f"sasl.password={SECRET}\n", 0o600, "is not supported",
    ),
    "credentials PLAINTEXT would not send": (
        f"sasl.username=u\nsasl.password={SECRET}\n", 0o600, "sends no credentials",
    ),
    "a CA the protocol would not use": (
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=u\n"
        f"sasl.password={SECRET}\nssl.ca.location=/etc/hostname\n", 0o600,
        "does not use TLS; set security.protocol=SASL_SSL",
    ),
    "a Java-only key": (
        f'sasl.jaas.config=org.apache.kafka... password="{SECRET}";\n', 0o600,
        "use sasl.username and sasl.password instead",
    ),
    "a missing CA file": (
        "security.protocol=SSL\nssl.ca.location=nowhere.pem\n", 0o600, "which is not a file",
    ),
    "registry credentials over http to another machine": (
        f"schema.registry.url=http://registry.example/apis/ccompat/v7\n"
        f"schema.registry.basic.auth.user.info=u:{REGISTRY_SECRET}\n", 0o600,
        "would go unencrypted",
    ),
    "registry user info without a colon": (
        f"schema.registry.basic.auth.user.info={REGISTRY_SECRET}\n", 0o600,
        "must be <user>:<password>",
    ),
    "an unknown registry key": (
        "schema.registry.proxy.host=x\n", 0o600, "not read by tipsync",
    ),
    "a secret others may read": (
        f"security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=u\n"
        f"sasl.password={SECRET}\n", 0o640, "(mode 0640); run: chmod 600",
    ),
    "a registry secret others may read": (
        f"schema.registry.basic.auth.user.info=u:{REGISTRY_SECRET}\n", 0o604,
        "holds a secret (schema.registry.basic.auth.user.info)",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refusals_name_the_file_and_the_fix_and_never_a_secret(
    case: str, tmp_path: Path
) -> None:
    text, mode, expected = REFUSED[case]
    path = write(tmp_path, text, mode)
    with pytest.raises(ClientConfigError) as refused:
        load(path)
    message = str(refused.value)
    assert str(path) in message
    assert expected in message
    assert SECRET not in message and REGISTRY_SECRET not in message
    # nothing chained either: a traceback shows no secret
    assert refused.value.__cause__ is None


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ClientConfigError, match=r"nothing\.properties \(from the test\) does"
                       r" not exist"):
        load(tmp_path / "nothing.properties")


def test_no_secret_in_repr_or_str(tmp_path: Path) -> None:
    client = load(sasl_ssl_file(tmp_path))
    settings = config.load_settings({config.CLIENT_CONFIG: str(tmp_path / "client.properties")})
    for shown in (repr(client), str(client), repr(settings), str(settings)):
        assert SECRET not in shown and REGISTRY_SECRET not in shown
    assert "username='stream'" in repr(client)
    assert str(client) == "kafka-1.example:9093,kafka-2.example:9093"


# --------------------------------------------------------------------------- settings, CLI


def test_settings_take_bootstrap_and_registry_from_the_file(tmp_path: Path) -> None:
    path = sasl_ssl_file(tmp_path)
    settings = config.load_settings({
        config.CLIENT_CONFIG: str(path), config.KAFKA_BOOTSTRAP: "127.0.0.1:30092",
        config.HOME: str(tmp_path / "home"),
    })
    assert settings.kafka_bootstrap == "kafka-1.example:9093,kafka-2.example:9093"
    assert settings.registry_url == "https://registry.example/apis/ccompat/v7"
    assert settings.client.protocol == "SASL_SSL"
    environment = config.connection_environment(settings)
    assert environment[config.CLIENT_CONFIG] == str(path.resolve())
    assert SECRET not in str(environment)
    assert config.load_settings(environment) == settings
    # without bootstrap.servers in the file, the variable's
    bare = write(tmp_path, "client.id=x\n", name="bare.properties")
    fallback = config.load_settings({config.CLIENT_CONFIG: str(bare),
                                     config.KAFKA_BOOTSTRAP: "127.0.0.1:30092"})
    assert fallback.kafka_bootstrap == "127.0.0.1:30092"
    assert fallback.client.librdkafka()["client.id"] == "x"


def test_a_registry_url_variable_with_a_password_is_refused() -> None:
    with pytest.raises(ClientConfigError) as refused:
        config.load_settings({config.REGISTRY_URL: f"https://u:{SECRET}@r.example/api"})
    assert SECRET not in str(refused.value)


def test_the_option_wins_over_the_variable_and_a_bad_file_stops_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from deploy.cli import main

    good = write(tmp_path, "bootstrap.servers=127.0.0.1:9\n", name="good.properties")
    bad = write(tmp_path, f"security.protocol=SASL_SSL\nsasl.password={SECRET}\n", 0o644,
                name="bad.properties")
    monkeypatch.setenv(config.CLIENT_CONFIG, str(good))
    assert main(["schemas", "check", "--client-config", str(bad)]) == 2
    error = capsys.readouterr().err
    assert str(bad) in error and "chmod 600" in error and SECRET not in error
    # the option became the variable, for this process and the processes it starts
    assert os.environ[config.CLIENT_CONFIG] == str(bad.resolve())


@pytest.mark.parametrize("command", [
    ["produce", "--agency", "a", "--entity", "person", "--file", "f"], ["stream"], ["sink"],
    ["run"], ["demo"], ["lag"], ["monitor"], ["model", "fit", "--out", "m"],
    ["schemas", "register"], ["schemas", "check"], ["topics", "create"],
    ["bench", "serde"], ["bench", "produce"], ["bench", "stream"],
])
def test_every_kafka_command_takes_the_option(command: list[str]) -> None:
    from deploy.cli import build_parser

    args = build_parser().parse_args([*command, "--client-config", "/x.properties"])
    assert args.client_config == Path("/x.properties")
