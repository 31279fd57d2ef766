"""The local registry's security, checked with curl (not tipsync's code) on the real Apicurio
Registry: HTTPS only, every request authenticated, readers read, only the admin changes.

Credentials reach curl on its standard input (``--config -``), never on its command line.
Then tipsync's own registry client and confluent-kafka's, with a reader's credentials, and
the user store's grant and revoke taking effect through ``Registry.reload``.
"""

from __future__ import annotations

import json
import shutil
import ssl
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from deploy.stack import registry_users
from deploy.stack.layout import StateLayout
from deploy.stack.principals import ADMIN, STREAM, new_secret, service_secrets
from deploy.stack.registry import realm_path
from deploy.stack.stack import LocalStack
from deploy.stack.tls import tls_files
from schemas.client_config import ClientConfig, RegistryConnection
from schemas.config import Settings
from schemas.errors import RegistryError, RegistryUnavailableError
from schemas.registry import SchemaRegistry

SCHEMA = json.dumps({"type": "record", "name": "Probe", "namespace": "test.security",
                     "fields": [{"name": "id", "type": "string"}]})
CURL_MISSING = shutil.which("curl") is None


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer at all
    exit_code: int
    body: str = ""


@dataclass(frozen=True)
class Registry:
    url: str
    ca: str
    secrets: dict[str, str]
    layout: StateLayout


@pytest.fixture(scope="module")
def registry(stack: Settings) -> Registry:
    if CURL_MISSING:
        pytest.fail("curl is not installed; the registry's security is checked with it")
    if not LocalStack(stack).registry.local:
        pytest.skip("the registry is not the local stack's; its users are not ours to read")
    layout = StateLayout.of(stack)
    return Registry(stack.registry_url, str(tls_files(layout.secrets).ca),
                    service_secrets(layout), layout)


def curl(url: str, *options: str, user: str | None = None, ca: str | None = None,
         method: str = "GET", body: str | None = None) -> Answer:
    """One request with curl; ``user`` ("name:secret") goes in curl's config on stdin."""
    config = f'user = "{user}"\n' if user else ""
    command = ["curl", "--silent", "--write-out", "\n%{http_code}",
               "--max-time", "20", "--request", method, "--config", "-", *options]
    if ca:
        command += ["--cacert", ca]
    if body is not None:
        command += ["--header", "Content-Type: application/vnd.schemaregistry.v1+json",
                    "--data", body]
    done = subprocess.run([*command, url], input=config, capture_output=True, text=True,
                          timeout=60)
    body, _, code = done.stdout.rpartition("\n")
    return Answer(int(code) if code.isdigit() and code != "000" else None, done.returncode, body)


def as_user(registry: Registry, name: str) -> str:
    return f"{name}:{registry.secrets[name]}"


@pytest.fixture
def subject(registry: Registry) -> Iterator[str]:
    name = f"test-security-{uuid.uuid4().hex[:10]}"
    yield name
    for suffix in ("", "?permanent=true"):
        curl(f"{registry.url}/subjects/{name}{suffix}", user=as_user(registry, ADMIN),
             ca=registry.ca, method="DELETE")


def register_body() -> str:
    return json.dumps({"schema": SCHEMA})


def test_no_credentials_and_a_wrong_password_are_refused(registry: Registry) -> None:
    assert curl(f"{registry.url}/subjects", ca=registry.ca).status == 401
    wrong = f"{ADMIN}:{new_secret()}"
    assert curl(f"{registry.url}/subjects", user=wrong, ca=registry.ca).status == 401
    unknown = f"nobody-{uuid.uuid4().hex[:6]}:{new_secret()}"
    assert curl(f"{registry.url}/subjects", user=unknown, ca=registry.ca).status == 401
    # The native API is closed as well, not only the Confluent-compatible one.
    native = registry.url.split("/apis/ccompat/")[0] + "/apis/registry/v3/groups"
    assert curl(native, ca=registry.ca).status == 401


def test_plain_http_gets_no_answer(registry: Registry) -> None:
    parts = urlsplit(registry.url)
    plain = parts._replace(scheme="http").geturl()
    answer = curl(f"{plain}/subjects", user=as_user(registry, ADMIN))
    assert answer.status is None and answer.exit_code != 0


def test_the_certificate_is_the_stacks_own(registry: Registry) -> None:
    # Without the stack's CA, curl does not trust the registry (exit 60: certificate).
    untrusted = curl(f"{registry.url}/subjects", user=as_user(registry, STREAM))
    assert untrusted.status is None and untrusted.exit_code == 60


def test_a_reader_reads_and_cannot_change_anything(registry: Registry, subject: str) -> None:
    admin, reader = as_user(registry, ADMIN), as_user(registry, STREAM)
    created = curl(f"{registry.url}/subjects/{subject}/versions", user=admin, ca=registry.ca,
                   method="POST", body=register_body())
    assert created.status == 200
    schema_id = json.loads(created.body)["id"]

    for path in ("/subjects", f"/subjects/{subject}/versions/latest",
                 f"/subjects/{subject}/versions", f"/schemas/ids/{schema_id}", "/config"):
        assert curl(registry.url + path, user=reader, ca=registry.ca).status == 200, path
    lookup = curl(f"{registry.url}/subjects/{subject}", user=reader, ca=registry.ca,
                  method="POST", body=register_body())
    assert lookup.status == 200  # looking a schema up is a read

    changes = [
        ("POST", f"/subjects/{subject}/versions", register_body()),
        ("POST", f"/subjects/{subject}-other/versions", register_body()),
        ("PUT", f"/config/{subject}", json.dumps({"compatibility": "NONE"})),
        ("PUT", "/config", json.dumps({"compatibility": "NONE"})),
        ("PUT", "/mode", json.dumps({"mode": "READONLY"})),
        # Apicurio counts a check against every version as a write (docs/SECURITY.md).
        ("POST", f"/compatibility/subjects/{subject}/versions", register_body()),
        ("DELETE", f"/subjects/{subject}/versions/1", None),
        ("DELETE", f"/subjects/{subject}", None),
    ]
    for method, path, body in changes:
        answer = curl(registry.url + path, user=reader, ca=registry.ca, method=method, body=body)
        assert answer.status == 403, (method, path, answer)
    still = curl(f"{registry.url}/subjects/{subject}/versions/1", user=reader, ca=registry.ca)
    assert still.status == 200


def test_the_admin_registers_and_changes(registry: Registry, subject: str) -> None:
    admin = as_user(registry, ADMIN)
    assert curl(f"{registry.url}/subjects/{subject}/versions", user=admin, ca=registry.ca,
                method="POST", body=register_body()).status == 200
    assert curl(f"{registry.url}/config/{subject}", user=admin, ca=registry.ca, method="PUT",
                body=json.dumps({"compatibility": "FULL"})).status == 200


def reader_connection(registry: Registry, name: str = STREAM) -> RegistryConnection:
    return RegistryConnection(registry.url, httpx.BasicAuth(name, registry.secrets[name]),
                              ssl.create_default_context(cafile=registry.ca))


def test_our_client_reads_as_a_reader_and_is_refused_a_change(
    registry: Registry, subject: str
) -> None:
    with SchemaRegistry(reader_connection(registry)) as reader:
        assert isinstance(reader.subjects(), list)
        with pytest.raises(RegistryError, match="HTTP 403 .*the admin's client properties"):
            reader.register(subject, SCHEMA)
        assert reader.latest(subject) is None
    anonymous = RegistryConnection(registry.url, None, ssl.create_default_context(
        cafile=registry.ca))
    with SchemaRegistry(anonymous) as client, pytest.raises(
        RegistryError, match="HTTP 401 .*schema.registry.basic.auth.user.info"
    ):
        client.subjects()
    # Without the stack's CA: refused at once, saying which key to set (no retries).
    untrusted = RegistryConnection(registry.url, reader_connection(registry).auth)
    with SchemaRegistry(untrusted) as client, pytest.raises(
        RegistryError, match="does not trust; give the registry's CA"
    ) as refused:
        client.subjects()
    assert not isinstance(refused.value, RegistryUnavailableError)


def test_confluent_client_reads_with_the_client_config_keys(
    registry: Registry, subject: str
) -> None:
    client = ClientConfig(
        bootstrap="unused:9", registry_url=registry.url,
        registry_user_info=as_user(registry, STREAM), registry_ca=registry.ca,
    )
    with SchemaRegistry(reader_connection(registry, ADMIN)) as admin:
        schema_id = admin.register(subject, SCHEMA)
    confluent = SchemaRegistryClient(client.confluent_registry())
    assert subject in confluent.get_subjects()
    assert json.loads(confluent.get_schema(schema_id).schema_str)["name"] == "Probe"


def test_the_realm_file_is_private_and_holds_no_secret(registry: Registry) -> None:
    path = realm_path(registry.layout)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text(encoding="utf-8")
    for name, secret in registry.secrets.items():
        assert secret not in text
        assert registry_users.digest(name, secret) in text
    log = registry.layout.log("registry").read_text(encoding="utf-8", errors="replace")
    assert not any(secret in log for secret in registry.secrets.values())


def test_a_grant_and_a_revoke_take_effect_on_reload(stack: Settings, registry: Registry) -> None:
    # A "." in the name: the realm file quotes it (a key segment otherwise).
    name, secret = f"test.reader-{uuid.uuid4().hex[:6]}", new_secret()
    local = LocalStack(stack).registry
    registry_users.grant(registry.layout, name, secret, "reader")
    try:
        assert curl(f"{registry.url}/subjects", user=f"{name}:{secret}",
                    ca=registry.ca).status == 401  # not yet: the realm loads at start
        assert local.reload() is not None
        assert curl(f"{registry.url}/subjects", user=f"{name}:{secret}",
                    ca=registry.ca).status == 200
    finally:
        registry_users.revoke(registry.layout, name)
    local.reload()
    assert curl(f"{registry.url}/subjects", user=f"{name}:{secret}",
                ca=registry.ca).status == 401
