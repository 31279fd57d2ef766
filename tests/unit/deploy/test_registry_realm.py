"""The registry's realm file, made from the registry user store, and the registry's HTTPS-only,
authenticated configuration (nothing started)."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import stat
from pathlib import Path

import httpx
import pytest

from deploy.stack import registry_users
from deploy.stack.layout import StackError, StateLayout
from deploy.stack.postgres import Postgres
from deploy.stack.principals import service_secrets
from deploy.stack.registry import Registry, realm_path, write_realm
from deploy.stack.tls import ensure_tls, tls_files
from schemas.config import load_settings

PREFIX = "quarkus.security.users.embedded"


def layout_in(tmp_path: Path) -> StateLayout:
    return StateLayout(tmp_path / "home", tmp_path / "cache")


def test_the_digest_is_quarkus_embedded_realm_form() -> None:
    # Quarkus' realm checks hex(SHA-512("user:realm:password")) with its default realm name.
    expected = hashlib.sha512(b"agency-x:Quarkus:s3cret").hexdigest()
    assert registry_users.digest("agency-x", "s3cret") == expected


def test_the_realm_holds_each_users_digest_and_apicurio_role(tmp_path: Path) -> None:
    layout = layout_in(tmp_path)
    registry_users.grant(layout, "admin", "admin-secret", "admin")
    registry_users.grant(layout, "police.ctu-2", "agency-secret", "reader")
    text = registry_users.realm_properties(registry_users.entries(layout))
    lines = text.splitlines()
    assert f"{PREFIX}.plain-text=false" in lines
    assert f"{PREFIX}.algorithm=digest-sha-512" in lines
    admin_digest = registry_users.digest("admin", "admin-secret")
    assert f'{PREFIX}.users."admin"={admin_digest}' in lines
    assert f'{PREFIX}.roles."admin"=sr-admin' in lines
    agency_digest = registry_users.digest("police.ctu-2", "agency-secret")
    assert f'{PREFIX}.users."police.ctu-2"={agency_digest}' in lines  # quoted: '.' stays
    assert f'{PREFIX}.roles."police.ctu-2"=sr-readonly' in lines
    assert "admin-secret" not in text and "agency-secret" not in text
    assert not any("sr-developer" in line for line in lines)


def test_a_revoked_user_leaves_the_realm(tmp_path: Path) -> None:
    layout = layout_in(tmp_path)
    registry_users.grant(layout, "agency-a", "one", "reader")
    registry_users.grant(layout, "agency-b", "two", "reader")
    assert registry_users.revoke(layout, "agency-a")
    text = registry_users.realm_properties(registry_users.entries(layout))
    assert '"agency-a"' not in text and '"agency-b"' in text


def test_an_unknown_role_in_the_store_becomes_a_reader() -> None:
    text = registry_users.realm_properties({"x": {"role": "owner", "digest": "0" * 128}})
    assert f'{PREFIX}.roles."x"=sr-readonly' in text.splitlines()


@pytest.mark.parametrize("name", ["", "a:b", 'a"b', "a b", "a=b", "-lead", "é", "a" * 101])
def test_a_name_the_realm_cannot_take_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="registry user name"):
        registry_users.grant(layout_in(tmp_path), name, "secret", "reader")
    with pytest.raises(ValueError, match="revoke it"):
        registry_users.realm_properties({name: {"role": "reader", "digest": "0" * 128}})


def test_a_digest_of_an_older_form_is_refused_and_a_service_granted_anew(
    tmp_path: Path,
) -> None:
    md5 = "0" * 32
    with pytest.raises(ValueError, match="'agency-a' a digest that is not hex SHA-512"):
        registry_users.realm_properties({"agency-a": {"role": "reader", "digest": md5}})
    layout = layout_in(tmp_path)
    secrets = service_secrets(layout)
    users = registry_users.entries(layout)
    users["sink"]["digest"] = md5
    registry_users.store_path(layout).write_text(json.dumps(users))
    service_secrets(layout)
    assert registry_users.entries(layout)["sink"]["digest"] == registry_users.digest(
        "sink", secrets["sink"]
    )


def test_the_realm_file_is_private_and_made_afresh(tmp_path: Path) -> None:
    layout = layout_in(tmp_path)
    registry_users.grant(layout, "agency-a", "one", "reader")
    path = write_realm(layout)
    assert path == realm_path(layout)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    registry_users.revoke(layout, "agency-a")
    write_realm(layout)
    assert '"agency-a"' not in path.read_text(encoding="utf-8")


def registry_in(tmp_path: Path, url: str = "https://127.0.0.1:42981/apis/ccompat/v7") -> Registry:
    settings = load_settings({"TIPSYNC_HOME": str(tmp_path / "home"),
                              "TIPSYNC_REGISTRY_URL": url})
    layout = StateLayout.of(settings)
    return Registry(settings, layout, Postgres(settings, layout))


def test_the_registry_serves_https_only_with_basic_auth_and_roles(tmp_path: Path) -> None:
    registry = registry_in(tmp_path)
    settings = registry.settings
    settings.pgpass_file.parent.mkdir(parents=True)
    settings.pgpass_file.write_text("127.0.0.1:1:apicurio:apicurio:db-secret\n")
    env = registry._environment()
    files = tls_files(registry.layout.secrets)
    assert env["QUARKUS_HTTP_SSL_PORT"] == "42981"
    assert env["QUARKUS_HTTP_INSECURE_REQUESTS"] == "disabled"
    assert env["QUARKUS_HTTP_SSL_CERTIFICATE_FILES"] == str(files.server_certificate)
    assert env["QUARKUS_HTTP_SSL_CERTIFICATE_KEY_FILES"] == str(files.server_key)
    assert env["QUARKUS_MANAGEMENT_SSL_CERTIFICATE_FILES"] == str(files.server_certificate)
    assert env["QUARKUS_HTTP_AUTH_BASIC"] == "true"
    assert env["APICURIO_AUTH_ROLE_BASED_AUTHORIZATION"] == "true"
    assert env["APICURIO_AUTH_ROLE_SOURCE"] == "token"
    assert env["APICURIO_AUTH_ANONYMOUS_READ_ACCESS_ENABLED"] == "false"
    assert env["QUARKUS_CONFIG_LOCATIONS"] == str(realm_path(registry.layout))
    # The service principals are in the realm, the admin as sr-admin.
    realm = realm_path(registry.layout).read_text(encoding="utf-8")
    assert f'{PREFIX}.roles."admin"=sr-admin' in realm
    assert f'{PREFIX}.roles."stream"=sr-readonly' in realm
    secrets = service_secrets(registry.layout)
    assert not any(secret in "\n".join(env.values()) for secret in secrets.values())


def test_the_stack_talks_to_its_registry_as_the_admin_trusting_its_ca(tmp_path: Path) -> None:
    registry = registry_in(tmp_path)
    ensure_tls(registry.layout.secrets)
    connection = registry.connection()
    assert connection.url == registry.settings.registry_url
    assert connection.auth is not None
    request = next(connection.auth.auth_flow(httpx.Request("GET", connection.url)))
    expected = f"admin:{service_secrets(registry.layout)['admin']}".encode()
    assert request.headers["Authorization"] == f"Basic {base64.b64encode(expected).decode()}"
    assert isinstance(connection.verify, ssl.SSLContext)  # trusting the stack's CA


def test_a_registry_elsewhere_is_reached_with_the_client_config(tmp_path: Path) -> None:
    issued = tmp_path / "issued.properties"
    issued.write_text("bootstrap.servers=kafka-1.example:9093\n"
                      "schema.registry.url=https://registry.example/apis/ccompat/v7\n")
    settings = load_settings({"TIPSYNC_HOME": str(tmp_path / "home"),
                              "TIPSYNC_CLIENT_CONFIG": str(issued)})
    layout = StateLayout.of(settings)
    registry = Registry(settings, layout, Postgres(settings, layout))
    assert not registry.local
    assert registry.connection() == settings.client.registry()
    assert registry.connection().url == "https://registry.example/apis/ccompat/v7"


def test_a_plain_http_url_for_the_local_registry_is_refused(tmp_path: Path) -> None:
    registry = registry_in(tmp_path, "http://127.0.0.1:42981/apis/ccompat/v7")
    with pytest.raises(StackError, match="serves HTTPS only; set it to https://127.0.0.1:42981"):
        registry.start()
