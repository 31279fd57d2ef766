"""What of a --sql DSN may be written down (checkpoint name, messages): never a secret."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from producers.sql_source import SourceTableError, _redacted, dsn_without_secrets

SECRET = "Pw-7f3"


@pytest.mark.parametrize(
    "dsn",
    [
        "host=db.local port=5432 dbname=travel user=reader",
        "postgresql://reader@db.local/travel?sslmode=require",
        "postgresql://reader@db.local/travel?passfile=/etc/tipsync/pgpass",
        "service=travel",
    ],
)
def test_a_dsn_without_a_secret_is_its_own_name_as_before(dsn: str) -> None:
    # The checkpoint folder is a hash of this name: the folder of existing checkpoints.
    assert dsn_without_secrets(dsn) == dsn


@pytest.mark.parametrize(
    ("dsn", "without"),
    [
        (f"host=db.local password={SECRET} dbname=travel",
         "host=db.local dbname=travel"),
        (f"password={SECRET} host=db.local dbname=travel",
         "host=db.local dbname=travel"),
        (f"host=db.local dbname=travel password = '{SECRET} \\' x' sslpassword={SECRET}",
         "host=db.local dbname=travel"),
        (f"postgresql://reader:{SECRET}@db.local/travel",
         "postgresql://reader@db.local/travel"),
        (f"postgresql://reader@db.local/travel?password={SECRET}",
         "postgresql://reader@db.local/travel"),
        (f"postgresql://reader@db.local/travel?sslmode=require&pass%77ord={SECRET}",
         "postgresql://reader@db.local/travel?sslmode=require"),
        (f"postgresql://reader:{SECRET}?x@db.local/travel",
         "postgresql://reader@db.local/travel"),
        (f"postgresql://reader:{SECRET}@h1:5432,h2:5433/travel?password={SECRET}&sslmode=require",
         "postgresql://reader@h1:5432,h2:5433/travel?sslmode=require"),
    ],
)
def test_a_secret_is_dropped_and_the_name_is_that_of_the_dsn_without_it(
    dsn: str, without: str
) -> None:
    name = dsn_without_secrets(dsn)
    assert SECRET not in name
    assert name == without  # the same database has one checkpoint, password or not
    assert "password" not in conninfo_to_dict(name)


def test_a_changed_password_keeps_the_name() -> None:
    assert dsn_without_secrets("host=h dbname=d password=old") == dsn_without_secrets(
        "host=h dbname=d password=new"
    )


def test_an_unparseable_dsn_with_a_password_is_refused_without_quoting_it() -> None:
    # libpq's own message would be: missing "=" after "Pw-7f3" in connection info string
    with pytest.raises(SourceTableError) as raised:
        dsn_without_secrets(f"host=h password=two {SECRET}")
    assert SECRET not in str(raised.value) and "--sql" in str(raised.value)


def test_an_unparseable_dsn_without_a_password_shows_the_parsers_message() -> None:
    with pytest.raises(SourceTableError, match="missing"):
        dsn_without_secrets("host=h nonsense")


def test_a_drivers_message_never_shows_the_password() -> None:
    message = f"connection failed: password {SECRET} refused"
    assert SECRET not in _redacted(message, f"host=h password={SECRET}")
    assert SECRET not in _redacted(message, f"host=h password=x {SECRET}")
