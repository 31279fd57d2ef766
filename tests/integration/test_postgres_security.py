"""PostgreSQL's side of issue 14 on the real server, checked with psql (not tipsync's code)
where something must be refused: TLS verified against the stack's CA, no plaintext from
another address, the sink's role unable to do anything but write its rows, the owner unable
to manage analysts, nobody searching as the owner, a store behind its code refused by the
sink, and a cluster made before all this upgraded when it starts.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from deploy.bench.scratch import scratch_database
from deploy.stack.layout import StateLayout
from deploy.stack.postgres import ADMIN_ROLE, ANALYST_ROLE, APP_ROLE, PG_HBA, Postgres
from deploy.stack.tls import ensure_tls
from schemas import config
from schemas.config import Settings, load_settings
from sinks.migrate import Migration, MigrationError, migrate, require_migrated, shipped_migrations
from sinks.roles import SINK_ROLE, conninfo_as

# What the sink may touch, and how: its rows and offsets, and reading the migrations.
SINK_WRITES = {
    "golden_record_state", "sink_offsets", "match_decision",
    "person", "person_source", "case", "case_source", "report", "report_source",
    "organisation", "organisation_source", "location", "location_source",
    "link", "link_source",
}


def psql(conninfo: str, *statements: str) -> subprocess.CompletedProcess[str]:
    """psql, the PostgreSQL project's own client, running ``statements`` in one session."""
    command = ["psql", conninfo, "-X", "-At", "-v", "ON_ERROR_STOP=1"]
    for statement in statements:
        command += ["-c", statement]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def refused(conninfo: str, statement: str) -> str:
    result = psql(conninfo, statement)
    assert result.returncode != 0, f"{statement!r} was allowed: {result.stdout}"
    return result.stderr


@pytest.fixture(scope="module")
def store(stack: Settings) -> Iterator[str]:
    """A migrated throwaway store; its owner's URL."""
    with scratch_database(stack.database_url, "test_pgsec") as url:
        migrate(url)
        yield url


# --------------------------------------------------------------------------- TLS


def test_every_stack_url_verifies_the_server_against_the_stack_ca(stack: Settings) -> None:
    settings = load_settings({config.HOME: str(stack.home)})
    ca = stack.home / config.STACK_CA_RELATIVE
    for url in (settings.database_url, stack.database_url):
        params = conninfo_to_dict(url)
        assert (params["sslmode"], params["sslrootcert"]) == ("verify-full", str(ca))
    result = psql(stack.database_url,
                  "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("|")[0] == "t"
    assert result.stdout.strip().split("|")[1] in ("TLSv1.2", "TLSv1.3")


def test_a_server_the_ca_did_not_sign_is_refused(stack: Settings, tmp_path: Path) -> None:
    other = ensure_tls(tmp_path / "secrets")  # another CA: a server impersonating ours fails
    result = psql(make_conninfo(stack.database_url, sslrootcert=str(other.ca)), "SELECT 1")
    assert result.returncode != 0
    assert "certificate verify failed" in result.stderr


def test_pg_hba_lets_only_tls_in_from_other_addresses(stack: Settings) -> None:
    rules = [line.split() for line in PG_HBA.splitlines() if line and line[0] != "#"]
    assert all(rule[-1] == "scram-sha-256" for rule in rules)
    plaintext = [rule for rule in rules if rule[0] == "host"]
    assert {rule[3] for rule in plaintext} == {"127.0.0.1/32", "::1/128"}
    assert [rule[3] for rule in rules if rule[0] == "hostssl"] == ["0.0.0.0/0", "::/0"]
    hba = StateLayout.of(stack).postgres_data / "pg_hba.conf"
    assert hba.read_text() == PG_HBA


# --------------------------------------------------------------------------- roles


def test_the_sink_role_may_write_its_rows_and_nothing_else(store: str) -> None:
    sink = conninfo_as(store, SINK_ROLE)
    allowed = psql(sink, "BEGIN",
                   "INSERT INTO reconciled.sink_offsets VALUES ('pgsec', 't', 0, 1)",
                   "UPDATE reconciled.sink_offsets SET next_offset = 2",
                   "DELETE FROM reconciled.sink_offsets", "ROLLBACK")
    assert allowed.returncode == 0, allowed.stderr
    for statement, why in (
        ("CREATE TABLE reconciled.sink_scratch (id int)", "permission denied for schema"),
        ("CREATE TABLE public.sink_scratch (id int)", "permission denied for schema"),
        ("DROP TABLE reconciled.person", "must be owner"),
        ("ALTER TABLE reconciled.person DISABLE ROW LEVEL SECURITY", "must be owner"),
        ("TRUNCATE reconciled.person", "permission denied"),
        (f"GRANT {ANALYST_ROLE} TO {SINK_ROLE}", "admin option"),
        ("SELECT * FROM reconciled.analyst_clearance", "permission denied"),
        ("INSERT INTO reconciled.schema_migrations VALUES (99, 'x', 'x')", "permission denied"),
        ("CREATE ROLE sink_made", "permission denied"),
        ("CREATE DATABASE sink_made", "permission denied"),
        (f"SET ROLE {APP_ROLE}", "permission denied"),
        (f"ALTER ROLE {SINK_ROLE} CREATEDB", "permission denied"),
    ):
        assert why in refused(sink, statement), statement
    # Granting what one lacks the grant option of "succeeds" with a warning and grants nothing.
    passed_on = psql(sink, "GRANT SELECT ON reconciled.person TO PUBLIC")
    assert 'no privileges were granted for "person"' in passed_on.stderr
    assert psql(conninfo_as(store, ADMIN_ROLE),
                "SELECT has_table_privilege('public', 'reconciled.person', 'SELECT')"
                ).stdout.strip() == "f"


def test_the_sink_role_has_rights_on_exactly_its_tables(store: str) -> None:
    """Every table of every schema (an audit log a later migration adds included): the sink
    reaches only those it writes, and the migrations' table read-only."""
    rows = psql(
        conninfo_as(store, ADMIN_ROLE),
        "SELECT n.nspname || '.' || c.relname,"
        " has_table_privilege(%L, c.oid, 'SELECT'),"
        " has_table_privilege(%L, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES,"
        " TRIGGER')"
        " FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p', 'v', 'm')"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND has_table_privilege(%L, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE,"
        " REFERENCES, TRIGGER')".replace("%L", f"'{SINK_ROLE}'"),
    )
    assert rows.returncode == 0, rows.stderr
    rights = {name: (read == "t", write == "t")
              for name, read, write in (line.split("|") for line in rows.stdout.splitlines())}
    assert rights == {
        **{f"reconciled.{table}": (True, True) for table in SINK_WRITES},
        "reconciled.schema_migrations": (True, False),
    }


def test_the_owner_cannot_make_analysts_or_roles(store: str) -> None:
    assert "admin option" in refused(store, f"GRANT {ANALYST_ROLE} TO {SINK_ROLE}")
    assert "permission denied" in refused(store, "CREATE ROLE owner_made")
    members = psql(conninfo_as(store, ADMIN_ROLE),
                   f"SELECT count(*) FROM pg_auth_members WHERE roleid = '{ANALYST_ROLE}'::regrole"
                   f" AND member IN ('{APP_ROLE}'::regrole, '{SINK_ROLE}'::regrole)")
    assert members.stdout.strip() == "0"


def test_search_person_refuses_the_owner_and_the_sink(store: str) -> None:
    for conninfo in (store, conninfo_as(store, SINK_ROLE)):
        result = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "search", "person", "Tamika",
             "--database-url", conninfo],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 2
        assert "sees every row of the store" in result.stderr
        assert "--connection FILE" in result.stderr
    bare = subprocess.run([sys.executable, "-m", "deploy.cli", "search", "person", "Tamika"],
                          capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2
    assert "one of the arguments --database-url --connection is required" in bare.stderr


def test_an_analyst_connects_with_tls_as_themselves(stack: Settings, tmp_path: Path) -> None:
    name = f"ana_pgsec_{uuid.uuid4().hex[:8]}"
    out = tmp_path / "ana.uri"

    def cli(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "deploy.cli", *arguments],
                              capture_output=True, text=True, timeout=60)

    added = cli("analyst", "add", name, "--clearance", "OFFICIAL", "--out", str(out))
    assert added.returncode == 0, added.stderr
    try:
        uri = out.read_text().strip()
        params = conninfo_to_dict(uri)
        assert (params["user"], params["sslmode"]) == (name, "verify-full")
        assert params["sslrootcert"] == str(stack.home / config.STACK_CA_RELATIVE)
        result = psql(uri, "SELECT current_user, ssl FROM pg_stat_ssl"
                           " WHERE pid = pg_backend_pid()")
        assert result.stdout.strip() == f"{name}|t", result.stderr
    finally:
        removed = cli("analyst", "remove", name)
        assert removed.returncode == 0, removed.stderr


# --------------------------------------------------------------------------- migrations


def test_the_sink_refuses_a_store_its_migrations_have_not_reached(stack: Settings) -> None:
    shipped = shipped_migrations()
    with scratch_database(stack.database_url, "test_pgsec_behind") as url:
        migrate(url, [m for m in shipped if m.version <= 5])
        result = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "sink", "--topic-root", "pgsec-never",
             "--database-url", conninfo_as(url, SINK_ROLE), "--metrics-port", "0"],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 1
        assert "run `tipsync db migrate` as the database owner" in result.stderr
        migrate(url)
        require_migrated(conninfo_as(url, SINK_ROLE))
        later = Migration(9999, "later", "SELECT 1", "0" * 64)
        with pytest.raises(MigrationError, match="lacks 1 migration.*9999_later.sql"):
            require_migrated(conninfo_as(url, SINK_ROLE), [*shipped, later])
        with pytest.raises(MigrationError, match="cannot create schema|permission denied"):
            migrate(conninfo_as(url, SINK_ROLE), [*shipped, later])


# --------------------------------------------------------------------------- a private cluster


def non_loopback_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def free_port(*hosts: str) -> int:
    for port in range(24100, 24900, 7):
        try:
            for host in hosts:
                with socket.socket() as candidate:
                    candidate.bind((host, port))
        except OSError:
            continue
        return port
    raise AssertionError("no free port in 24100..24900")


@pytest.fixture(scope="module")
def private_cluster(stack: Settings) -> Iterator[Postgres]:
    """A PostgreSQL cluster of its own (initdb, roles, TLS, as `stack up` makes them) under
    the stack's state folder, which PostgreSQL's user may traverse; removed afterwards."""
    address = non_loopback_address()
    hosts = ("127.0.0.1", address) if address else ("127.0.0.1",)
    home = stack.home / f"pgsec-{uuid.uuid4().hex[:8]}"
    port = free_port(*hosts)
    settings = load_settings({
        config.HOME: str(home), config.CACHE: str(stack.cache),
        config.DATABASE_URL: config.local_database_url(home, port),
    })
    # The server's certificate names the non-loopback address too, as a deployment's would.
    ensure_tls(StateLayout.of(settings).secrets, [address] if address else [])
    postgres = Postgres(settings, StateLayout.of(settings))
    try:
        postgres.start()
        postgres.wait()
        yield postgres
    finally:
        postgres.stop()
        shutil.rmtree(home, ignore_errors=True)


def restart(postgres: Postgres) -> None:
    postgres.stop()
    postgres.start()
    postgres.wait()


def test_a_cluster_made_before_tls_and_the_sink_role_is_upgraded_on_start(
    private_cluster: Postgres,
) -> None:
    layout, admin = private_cluster.layout, private_cluster.admin_url()
    # Make it what an older stack left: no sink role, the owner holding the analyst group,
    # loopback-only rules, no certificate in the cluster's folder, no sink password.
    old = psql(admin, f"DROP ROLE {SINK_ROLE}",
               f"GRANT {ANALYST_ROLE} TO {APP_ROLE} WITH ADMIN OPTION")
    assert old.returncode == 0, old.stderr
    private_cluster.stop()
    (layout.postgres_data / "pg_hba.conf").write_text(
        "local all all scram-sha-256\nhost  all all 127.0.0.1/32 scram-sha-256\n"
    )
    shutil.rmtree(layout.postgres_dir / "tls")
    pgpass = private_cluster.settings.pgpass_file
    pgpass.write_text("".join(line + "\n" for line in pgpass.read_text().splitlines()
                              if f":{SINK_ROLE}:" not in line))
    private_cluster.start()
    private_cluster.wait()

    assert (layout.postgres_data / "pg_hba.conf").read_text() == PG_HBA
    sink = conninfo_as(private_cluster.settings.database_url, SINK_ROLE)
    login = psql(sink, "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert login.stdout.strip() == f"{SINK_ROLE}|t", login.stderr
    members = psql(admin, f"SELECT count(*) FROM pg_auth_members"
                          f" WHERE roleid = '{ANALYST_ROLE}'::regrole")
    assert members.stdout.strip() == "0"
    key = layout.postgres_dir / "tls" / "server-key.pem"
    assert key.stat().st_mode & 0o777 == 0o600


def test_plaintext_from_another_address_is_refused_and_tls_accepted(
    private_cluster: Postgres,
) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from; "
                    "test_pg_hba_lets_only_tls_in_from_other_addresses checks the rules")
    admin = private_cluster.admin_url()
    # How a deployment opens PostgreSQL to other machines (docs/OPERATIONS.md).
    opened = psql(admin, f"ALTER SYSTEM SET listen_addresses = '127.0.0.1,{address}'")
    assert opened.returncode == 0, opened.stderr
    restart(private_cluster)
    remote = make_conninfo(private_cluster.settings.database_url, host=address)
    plaintext = psql(make_conninfo(remote, sslmode="disable"), "SELECT 1")
    assert plaintext.returncode != 0
    assert "no pg_hba.conf entry" in plaintext.stderr
    assert "no encryption" in plaintext.stderr
    # verify-full from the other address: the certificate names it, the CA signed it.
    verified = psql(remote, "SELECT ssl, client_addr FROM pg_stat_ssl JOIN pg_stat_activity"
                            " USING (pid) WHERE pid = pg_backend_pid()")
    assert verified.stdout.strip() == f"t|{address}", verified.stderr
    wrong = private_cluster.layout.home / "wrong.pgpass"
    wrong.write_text(f"*:*:*:{APP_ROLE}:not-the-password\n")
    wrong.chmod(0o600)
    denied = psql(make_conninfo(remote, passfile=str(wrong)), "SELECT 1")
    assert "password authentication failed" in denied.stderr
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute("ALTER SYSTEM RESET listen_addresses")
    restart(private_cluster)
