"""The pure parts of ``tipsync analyst``: names, agencies, the URI, the passfile, SCRAM."""

from __future__ import annotations

import base64
import hashlib
import hmac
import stat
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from deploy.cli import build_parser
from deploy.operations.analysts import (
    AnalystError,
    admin_conninfo,
    analyst_uri,
    check_name,
    connection_files,
    parse_agencies,
    passfile_line,
    read_connection_file,
    refuse_password_in,
    write_private,
)
from deploy.stack.scram import scram_verifier

STORE = "postgresql://tipsync@127.0.0.1:15432/tipsync?passfile=/home/x/.tipsync/secrets/pgpass"


@pytest.mark.parametrize("name", ["tipsync", "tipsync_admin", "tipsync_analyst", "postgres",
                                  "pg_read_all_data", "Ana", "1ana", "ana-x", "a" * 64, ""])
def test_reserved_and_malformed_names_are_refused(name: str) -> None:
    with pytest.raises(AnalystError):
        check_name(name)


def test_an_ordinary_login_is_accepted() -> None:
    assert check_name("ana_campbell2") == "ana_campbell2"


def test_agencies_are_sorted_unique_and_checked() -> None:
    assert parse_agencies(None) is None
    assert parse_agencies("police-ctu, immigration,police-ctu") == ("immigration", "police-ctu")
    for bad in (",", "Police CTU", "x;drop"):
        with pytest.raises(AnalystError):
            parse_agencies(bad)


def test_the_uri_names_the_passfile_and_keeps_only_where_the_server_is(tmp_path: Path) -> None:
    passfile = tmp_path / "ana.uri.pgpass"
    uri = analyst_uri(STORE + "&sslmode=require&password=owners", "ana_x", passfile)
    params = conninfo_to_dict(uri)
    assert uri.startswith("postgresql://ana_x@127.0.0.1:15432/tipsync?")
    assert params == {"user": "ana_x", "host": "127.0.0.1", "port": "15432",
                      "dbname": "tipsync", "passfile": str(passfile), "sslmode": "require"}


def test_the_uri_of_a_key_value_conninfo_and_an_odd_folder(tmp_path: Path) -> None:
    passfile = tmp_path / "a folder&more" / "ana.uri.pgpass"
    uri = analyst_uri("host=db.example port=5432 dbname=tipsync_x user=owner", "ana", passfile)
    assert conninfo_to_dict(uri)["passfile"] == str(passfile)
    assert conninfo_to_dict(uri)["dbname"] == "tipsync_x"


def test_the_admin_connects_to_the_same_database_with_the_stack_passfile() -> None:
    params = conninfo_to_dict(admin_conninfo(STORE, Path("/s/pgpass")))
    assert params == {"host": "127.0.0.1", "port": "15432", "dbname": "tipsync",
                      "user": "tipsync_admin", "passfile": "/s/pgpass"}


def test_passfile_lines_escape_separators() -> None:
    assert passfile_line("ana", "a:b\\c") == "*:*:*:ana:a\\:b\\\\c\n"


def test_the_scram_verifier_is_what_postgresql_computes() -> None:
    salt = bytes(range(16))
    verifier = scram_verifier("pencil", salt, 4096)
    head, keys = verifier.split("$", 1)[1].split("$")
    iterations, salt_text = head.split(":")
    stored, server = keys.split(":")
    assert verifier.startswith("SCRAM-SHA-256$4096:") and "pencil" not in verifier
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    assert base64.b64decode(salt_text) == salt and iterations == "4096"
    assert base64.b64decode(server) == hmac.new(salted, b"Server Key", "sha256").digest()
    client = hmac.new(salted, b"Client Key", "sha256").digest()
    assert base64.b64decode(stored) == hashlib.sha256(client).digest()
    assert scram_verifier("pencil") != scram_verifier("pencil")  # a fresh salt each time


def test_private_files_are_0600_and_never_overwritten(tmp_path: Path) -> None:
    files = connection_files(tmp_path / "ana.uri")
    assert files.passfile == tmp_path / "ana.uri.pgpass"
    write_private(files.uri_file, "postgresql://ana@h/db?passfile=x\n")
    assert stat.S_IMODE(files.uri_file.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        write_private(files.uri_file, "again")


def test_a_connection_file_with_a_password_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.uri"
    good.write_text("# ana's login\n\npostgresql://ana@h:5432/db?passfile=/p\n")
    assert read_connection_file(good) == "postgresql://ana@h:5432/db?passfile=/p"
    for text in ("postgresql://ana:secret@h/db", "host=h user=ana password=secret"):
        bad = tmp_path / "bad.uri"
        bad.write_text(text)
        with pytest.raises(AnalystError, match="carries a password") as refused:
            read_connection_file(bad)
        assert "secret" not in str(refused.value)
    with pytest.raises(AnalystError, match="carries a password"):
        refuse_password_in("postgresql://a:pw@h/db", "--admin-url")


def test_the_commands_parse() -> None:
    parser = build_parser()
    args = parser.parse_args(["analyst", "add", "ana", "--clearance", "SENSITIVE",
                              "--agencies", "police-ctu", "--out", "ana.uri"])
    assert (args.name, args.clearance, args.agencies, args.out) == (
        "ana", "SENSITIVE", "police-ctu", Path("ana.uri"))
    with pytest.raises(SystemExit):
        parser.parse_args(["analyst", "add", "ana", "--clearance", "SECRET", "--out", "f"])
    args = parser.parse_args(["search", "person", "Kevin", "--connection", "ana.uri"])
    assert args.connection == Path("ana.uri")
    with pytest.raises(SystemExit):
        parser.parse_args(["search", "person", "Kevin", "--connection", "a",
                           "--database-url", "b"])
