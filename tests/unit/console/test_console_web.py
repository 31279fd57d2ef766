"""The console's web layer without a store: login form, headers, redirects, CSRF, sessions."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from starlette.testclient import TestClient

from deploy.console import people
from deploy.console.app import ConsoleOptions, build_app
from deploy.console.security import CONTENT_SECURITY_POLICY, LOGIN_COOKIE, SESSION_COOKIE
from deploy.console.sessions import SessionStore, analyst_conninfo

STORE = ("postgresql://tipsync@127.0.0.1:15432/tipsync?passfile=/home/x/pgpass"
         "&sslmode=verify-full&sslrootcert=/home/x/ca.pem")


class FakeConnection:
    """Stands in for a psycopg connection in the session store's own tests."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def client() -> TestClient:
    return TestClient(build_app(ConsoleOptions(database_url=STORE)),
                      base_url="https://localhost", follow_redirects=False)


def test_every_page_but_the_login_sends_a_stranger_to_the_login(client: TestClient) -> None:
    for path in ("/", "/search?q=someone", "/person/4749cb94-9b5f-5e5d-b0f2-53c6db31aaab",
                 "/review", "/no/such/page"):
        response = client.get(path)
        assert (response.status_code, response.headers["location"]) == (303, "/login")
    assert client.post("/logout").headers["location"] == "/login"


def test_responses_carry_the_security_headers(client: TestClient) -> None:
    response = client.get("/login")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src" not in CONTENT_SECURITY_POLICY  # default-src 'none': no script
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


def test_the_login_form_sets_a_strict_secure_cookie_and_its_token(client: TestClient) -> None:
    response = client.get("/login")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{LOGIN_COOKIE}=")
    assert all(flag in cookie for flag in ("HttpOnly", "Secure", "SameSite=strict"))
    token = cookie.split(";")[0].split("=", 1)[1]
    assert f'value="{token}"' in response.text
    assert 'for="username"' in response.text and 'for="password"' in response.text
    # A second look at the page (another tab, the browser's favicon request) keeps the token.
    client.cookies.set(LOGIN_COOKIE, token)
    again = client.get("/login")
    assert f'value="{token}"' in again.text


def test_a_login_post_without_the_cookie_token_is_refused_before_any_connection(
    client: TestClient,
) -> None:
    client.cookies.clear()
    response = client.post("/login", data={"csrf_token": "x" * 43, "username": "a",
                                           "password": "b"})
    assert response.status_code == 403
    assert "security token" in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_the_analyst_connection_keeps_where_and_how_to_trust_never_the_owner() -> None:
    conninfo = analyst_conninfo(STORE)
    assert "sslmode=verify-full" in conninfo and "sslrootcert=/home/x/ca.pem" in conninfo
    assert "host=127.0.0.1" in conninfo and "port=15432" in conninfo
    assert "tipsync" in conninfo  # the database's name
    assert "user=" not in conninfo and "passfile" not in conninfo


def test_sessions_end_when_idle_and_after_their_lifetime() -> None:
    now = [1000.0]
    store = SessionStore(idle_seconds=60, lifetime_seconds=300, clock=lambda: now[0])
    connection: Any = FakeConnection()
    session = store.open("ana", connection, steward=False)
    for _ in range(5):  # a request every 50 s keeps it alive...
        now[0] += 50
        assert store.get(session.session_id) is session
    now[0] += 51  # ...until the lifetime has passed, however busy
    assert store.get(session.session_id) is None and connection.closed
    idle: Any = FakeConnection()
    other = store.open("ben", idle, steward=False)
    now[0] += 61
    assert store.get(other.session_id) is None and idle.closed
    assert store.get(None) is None and store.get("unknown") is None


def test_session_ids_and_tokens_are_random_and_distinct() -> None:
    store = SessionStore()
    first = store.open("ana", FakeConnection(), steward=False)  # type: ignore[arg-type]
    second = store.open("ana", FakeConnection(), steward=True)  # type: ignore[arg-type]
    assert len({first.session_id, second.session_id, first.csrf_token,
                second.csrf_token}) == 4
    assert len(first.session_id) >= 43


def test_search_input_is_checked_with_sentences() -> None:
    assert people.parse_search("  Ana  ", "1990-02-28") == ("Ana", date(1990, 2, 28))
    assert people.parse_search("Ana", "") == ("Ana", None)
    with pytest.raises(people.InputProblem, match="YYYY-MM-DD"):
        people.parse_search("Ana", "31/02/1990")
    with pytest.raises(people.InputProblem, match="at most 200"):
        people.parse_search("x" * 201, None)
    with pytest.raises(people.InputProblem, match="not a golden person id"):
        people.parse_golden_id("42")


def test_dates_of_birth_show_only_what_is_known() -> None:
    born = date(1998, 7, 1)
    assert people.shown_date(born, "YEAR") == "1998"
    assert people.shown_date(born, "MONTH") == "1998-07"
    assert people.shown_date(born, "DAY") == "1998-07-01"
    assert people.shown_date(None, None) == ""


def test_dead_letters_are_counted_per_stage_and_reason_from_the_metrics_text() -> None:
    from deploy.console.operations import dead_letters_by_reason

    stream = (
        "# HELP tipsync_stream_dead_letters_total messages sent to a tip.dlq.* topic\n"
        "# TYPE tipsync_stream_dead_letters_total counter\n"
        'tipsync_stream_dead_letters_total{stage="ingest",reason="schema_mismatch"} 3.0\n'
        'tipsync_stream_dead_letters_total{stage="ingest",reason="stale_version"} 2.0\n'
        'tipsync_stream_dead_letters_created{stage="ingest",reason="stale_version"} 1.7e9\n'
    )
    second_worker = ('tipsync_stream_dead_letters_total{stage="ingest",'
                     'reason="schema_mismatch"} 1.0\n')
    sink = ('# TYPE tipsync_sink_dead_letters_total counter\n'
            'tipsync_sink_dead_letters_total{reason="undecodable"} 4.0\n'
            'tipsync_sink_batches_total 9.0\n')
    assert dead_letters_by_reason([stream, second_worker, sink]) == {
        ("ingest", "schema_mismatch"): 4.0, ("ingest", "stale_version"): 2.0,
        ("sink", "undecodable"): 4.0}
