"""The local PostgreSQL's security settings, without a server: who may connect how, and the
URLs the stack writes (each verifies the server against the stack's CA)."""

from __future__ import annotations

from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from deploy.operations.analysts import analyst_uri
from deploy.stack.layout import StateLayout
from deploy.stack.postgres import PG_HBA, Postgres
from deploy.stack.tls import tls_files
from schemas import config
from schemas.config import load_settings
from sinks.roles import SINK_ROLE, conninfo_as


def local_postgres(home: Path) -> Postgres:
    settings = load_settings({config.HOME: str(home)})
    return Postgres(settings, StateLayout.of(settings))


def test_only_loopback_may_connect_without_tls_and_everyone_needs_a_scram_password() -> None:
    rules = [line.split() for line in PG_HBA.splitlines() if line and not line.startswith("#")]
    assert {rule[-1] for rule in rules} == {"scram-sha-256"}
    assert [rule[3] for rule in rules if rule[0] == "host"] == ["127.0.0.1/32", "::1/128"]
    assert [rule[3] for rule in rules if rule[0] == "hostssl"] == ["0.0.0.0/0", "::/0"]
    # The first matching line decides: the loopback lines come before the catch-alls.
    kinds = [rule[0] for rule in rules]
    assert kinds.index("hostssl") > max(i for i, kind in enumerate(kinds) if kind == "host")


def test_the_default_store_url_verifies_the_server_against_the_stack_ca(tmp_path: Path) -> None:
    settings = load_settings({config.HOME: str(tmp_path)})
    params = conninfo_to_dict(settings.database_url)
    ca = tls_files(StateLayout.of(settings).secrets).ca
    assert ca == tmp_path / config.STACK_CA_RELATIVE
    assert (params["sslmode"], params["sslrootcert"]) == ("verify-full", str(ca))
    assert params["passfile"] == str(tmp_path / config.PGPASS_RELATIVE)
    assert "password" not in params


def test_the_admin_and_registry_urls_verify_the_server_too(tmp_path: Path) -> None:
    postgres = local_postgres(tmp_path)
    ca = tmp_path / config.STACK_CA_RELATIVE
    admin = conninfo_to_dict(postgres.admin_url("tipsync"))
    assert (admin["user"], admin["dbname"], admin["sslmode"], admin["sslrootcert"]) == (
        "tipsync_admin", "tipsync", "verify-full", str(ca))
    assert postgres.jdbc_url("apicurio") == (
        f"jdbc:postgresql://127.0.0.1:{config.DEFAULT_POSTGRES_PORT}/apicurio"
        f"?sslmode=verify-full&sslrootcert={ca}"
    )


def test_the_sink_and_analysts_connect_to_the_same_store_with_the_same_tls(
    tmp_path: Path,
) -> None:
    store = load_settings({config.HOME: str(tmp_path)}).database_url
    sink = conninfo_to_dict(conninfo_as(store, SINK_ROLE))
    assert sink == {**conninfo_to_dict(store), "user": SINK_ROLE}
    keyword_form = conninfo_as("host=db.example port=5433 dbname=tipsync user=tipsync", "x")
    assert conninfo_to_dict(keyword_form) == {"host": "db.example", "port": "5433",
                                              "dbname": "tipsync", "user": "x"}
    analyst = conninfo_to_dict(analyst_uri(store, "ana", tmp_path / "ana.pgpass"))
    assert analyst["user"] == "ana"
    assert (analyst["sslmode"], analyst["sslrootcert"]) == ("verify-full", sink["sslrootcert"])
