"""Server-side sessions, each holding one PostgreSQL connection as its analyst's own role.

Why a connection per session rather than a connection per request: to connect again on every
request the console would have to keep the analyst's password in memory for as long as the
session lasts; holding the connection that the login opened lets the password be dropped the
moment the server has accepted it. A session's requests take turns on its connection (a
lock), which also keeps one analyst's statements in the order they were made. Sessions end
after ``idle_seconds`` without a request and after ``lifetime_seconds`` in any case; the
connection closes with them, and a connection the server dropped ends its session.

The browser holds only a random session id (256 bits) in a cookie; nothing else about the
session ever leaves the server.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from deploy.operations.analysts import ANALYST_GROUP, KEPT_SETTINGS, STEWARD_GROUP
from sinks.search import SearchRefused, require_analyst

APPLICATION_NAME = "tipsync console"


class LoginRefused(Exception):
    """The username and password were not accepted, or the role is not an analyst."""


@dataclass
class Session:
    session_id: str
    analyst: str
    connection: psycopg.Connection
    csrf_token: str
    steward: bool
    started: float
    last_seen: float
    lock: threading.Lock = field(default_factory=threading.Lock)


def analyst_conninfo(database_url: str) -> str:
    """Where the store is and how to trust it, from the store's URL: never its user,
    password or passfile (those are the owner's)."""
    params = conninfo_to_dict(database_url)
    return make_conninfo("", **{key: params[key] for key in KEPT_SETTINGS if params.get(key)})


def connect_as_analyst(database_url: str, username: str, password: str) -> tuple[
        psycopg.Connection, bool]:
    """A connection as ``username`` (TLS as the store's URL asks, ``verify-full`` on the local
    stack) and whether the role may decide review pairs; ``LoginRefused`` for a wrong password,
    an unknown role or a role that row-level security does not bind (the owner, a superuser,
    the sink): the console is for analysts only."""
    if not username or not password or len(username) > 63 or len(password) > 1024:
        raise LoginRefused("username and password are both required")
    # A wrong password, an unknown role and an unreachable server all raise the same
    # OperationalError (libpq gives no SQLSTATE before the session exists): the caller says
    # so in one sentence, which also tells nobody whether a username exists.
    connection = psycopg.connect(
        analyst_conninfo(database_url), user=username, password=password,
        autocommit=True, connect_timeout=10, application_name=APPLICATION_NAME,
    )
    try:
        require_analyst(connection)
        row = connection.execute(
            "SELECT pg_has_role(current_user, %s, 'MEMBER'),"
            " coalesce(pg_has_role(current_user, to_regrole(%s), 'MEMBER'), false)",
            (ANALYST_GROUP, STEWARD_GROUP),
        ).fetchone()
    except SearchRefused:
        connection.close()
        raise LoginRefused(
            "this role sees every row of the store; the console is for analysts (tipsync"
            " analyst add)") from None
    if row is None or not row[0]:
        connection.close()
        raise LoginRefused("this role is not an analyst (tipsync analyst add)")
    return connection, bool(row[1])


class SessionStore:
    """The open sessions, by id; expired ones are closed when met or swept."""

    def __init__(self, idle_seconds: float = 900.0, lifetime_seconds: float = 8 * 3600.0,
                 max_sessions: int = 200,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_seconds = idle_seconds
        self.lifetime_seconds = lifetime_seconds
        self.max_sessions = max_sessions
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, analyst: str, connection: psycopg.Connection, steward: bool) -> Session:
        self.sweep()
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), analyst, connection,
                          secrets.token_urlsafe(32), steward, now, now)
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                connection.close()
                raise LoginRefused(
                    f"the console has {self.max_sessions} open sessions already; try again"
                    " when one has ended")
            self._sessions[session.session_id] = session
        return session

    def _expired(self, session: Session, now: float) -> bool:
        return (now - session.last_seen > self.idle_seconds
                or now - session.started > self.lifetime_seconds
                or session.connection.closed)

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this id (its idle clock restarted), else None."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self.clock()
        if self._expired(session, now):
            self.close(session_id)
            return None
        session.last_seen = now
        return session

    def close(self, session_id: str) -> None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            session.connection.close()

    def sweep(self) -> None:
        now = self.clock()
        with self._lock:
            expired = [key for key, value in self._sessions.items() if self._expired(value, now)]
        for key in expired:
            self.close(key)

    def close_all(self) -> None:
        with self._lock:
            keys = list(self._sessions)
        for key in keys:
            self.close(key)

    def __len__(self) -> int:
        return len(self._sessions)
