"""The console's web application: routes, the login, and the wiring of its parts.

Pages are server-rendered Jinja2 templates (``templates/``) with plain forms; there is no
script. Each page's work is a plain function over the session's connection (``people``,
``review``, ``operations``), run in a worker thread (psycopg is blocking); this module only
checks who asks, reads the request and renders the answer.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from deploy.console import people
from deploy.console.security import (
    COOKIE_OPTIONS,
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SecurityHeaders,
    tokens_match,
)
from deploy.console.sessions import LoginRefused, Session, SessionStore, connect_as_analyst
from schemas.config import project_root

HERE = Path(__file__).parent
OPERATIONS_DOC = "docs/OPERATIONS.md"
LOGIN_TOKEN_LENGTH = len(secrets.token_urlsafe(32))
log = logging.getLogger("tipsync.console")

Page = Callable[[Request, Session], Awaitable[Response]]


@dataclass
class ConsoleOptions:
    """What the console needs besides the request: where the store is, and the optional
    parts (the steward's and the operator's pages) wired in by ``deploy.cli.console``."""

    database_url: str
    sessions: SessionStore = field(default_factory=SessionStore)
    # name -> callable(session) -> template context; filled by the optional pages' modules
    extra_pages: dict[str, Any] = field(default_factory=dict)


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals["shown_date"] = people.shown_date
    templates.env.filters["when"] = people.shown_time
    templates.env.filters["age"] = people.shown_age
    templates.env.globals["operations_doc"] = OPERATIONS_DOC
    return templates


def build_app(options: ConsoleOptions) -> Starlette:
    templates = _templates()
    sessions = options.sessions

    def render(request: Request, name: str, status: int = 200,
               session: Session | None = None, **context: Any) -> Response:
        context.update(session=session, csrf_field=CSRF_FIELD,
                       csrf_token=session.csrf_token if session else None)
        return templates.TemplateResponse(request, name, context, status_code=status)

    def authenticated(page: Page) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = sessions.get(request.cookies.get(SESSION_COOKIE))
            if session is None:
                return RedirectResponse("/login", status_code=303)
            if request.method == "POST":
                form = await request.form()
                given = form.get(CSRF_FIELD)
                if not tokens_match(session.csrf_token, given if isinstance(given, str)
                                    else None):
                    return render(request, "refused.html", 403, session,
                                  reason="This form was not sent from this console (its"
                                  " security token is missing or wrong), so nothing was"
                                  " done. Open the page again and resend the form.")
            try:
                return await page(request, session)
            except psycopg.OperationalError:
                sessions.close(session.session_id)
                return RedirectResponse("/login?ended=1", status_code=303)
        return endpoint

    def locked(session: Session, work: Callable[[], Any]) -> Any:
        with session.lock:
            return work()

    # ---------------------------------------------------------------- login and logout

    async def login_form(request: Request) -> Response:
        # The token of an earlier login page stays: a second tab, or the browser's own
        # request for /favicon.ico, must not make the first page's form stale.
        token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
        if len(token) != LOGIN_TOKEN_LENGTH:
            token = secrets.token_urlsafe(32)
        response = render(request, "login.html", login_token=token,
                          ended=bool(request.query_params.get("ended")))
        response.set_cookie(LOGIN_COOKIE, token, max_age=900, **COOKIE_OPTIONS)
        return response

    async def login(request: Request) -> Response:
        form = await request.form()
        token = form.get(CSRF_FIELD)
        if not tokens_match(request.cookies.get(LOGIN_COOKIE),
                            token if isinstance(token, str) else None):
            return render(request, "refused.html", 403,
                          reason="This login form was not sent from this console (its"
                          " security token is missing or wrong). Open the login page again.")
        username = str(form.get("username") or "").strip()
        password = str(form.get("password") or "")
        try:
            connection, steward = await run_in_threadpool(
                connect_as_analyst, options.database_url, username, password)
            session = sessions.open(username, connection, steward)
        except (LoginRefused, psycopg.OperationalError) as error:
            # The reason stays on the server, without the username (the store's message
            # names it); the page says the same thing for a wrong name or password.
            log.info("console: a login was refused (%s)", type(error).__name__)
            response = render(request, "login.html", 401, login_token=token,
                              problem=str(error) if isinstance(error, LoginRefused) else
                              "the username or password was not accepted, or the store"
                              " cannot be reached; check both, and if they are right ask an"
                              " operator to check the store (tipsync stack status)")
            return response
        log.info("console: a session started (%d open)", len(sessions))
        response = RedirectResponse("/search", status_code=303)
        response.set_cookie(SESSION_COOKIE, session.session_id, **COOKIE_OPTIONS)
        response.delete_cookie(LOGIN_COOKIE, **COOKIE_OPTIONS)
        return response

    async def logout(request: Request, session: Session) -> Response:
        sessions.close(session.session_id)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, **COOKIE_OPTIONS)
        return response

    # ---------------------------------------------------------------- search and person

    async def home(request: Request, session: Session) -> Response:
        return RedirectResponse("/search", status_code=303)

    async def search(request: Request, session: Session) -> Response:
        raw_name, raw_dob = request.query_params.get("q"), request.query_params.get("dob")
        try:
            name, dob = people.parse_search(raw_name, raw_dob)
        except people.InputProblem as problem:
            return render(request, "search.html", 400, session, q=raw_name or "",
                          dob=raw_dob or "", problem=str(problem), matches=None)
        matches = await run_in_threadpool(
            locked, session, lambda: people.search(session.connection, name, dob))
        return render(request, "search.html", session=session, q=name,
                      dob=dob.isoformat() if dob else "", matches=matches if name else None)

    async def person(request: Request, session: Session) -> Response:
        try:
            golden_id = people.parse_golden_id(request.path_params["golden_id"])
        except people.InputProblem as problem:
            return render(request, "missing.html", 404, session, reason=str(problem))

        def read() -> tuple[people.PersonPage | None, str | None]:
            page = people.person_page(session.connection, golden_id)
            if page is None:
                return None, people.survivor_of(session.connection, golden_id)
            return page, None

        page, survivor = await run_in_threadpool(locked, session, read)
        if survivor:
            return RedirectResponse(f"/person/{survivor}", status_code=303)
        if page is None:
            return render(request, "missing.html", 404, session,
                          reason=f"No person {golden_id} that you may see: the id is wrong,"
                          " the person was removed, or your clearance does not cover them.")
        return render(request, "person.html", session=session, page=page)

    async def operations_doc(request: Request, session: Session) -> Response:
        found = project_root()
        path = found / OPERATIONS_DOC if found else None
        if path is None or not path.is_file():
            return render(request, "missing.html", 404, session,
                          reason=f"{OPERATIONS_DOC} is not beside this console; read it in"
                          " the tipsync repository.")
        return PlainTextResponse(path.read_text("utf-8"))

    routes = [
        Route("/login", login_form, methods=["GET"]),
        Route(f"/{OPERATIONS_DOC}", authenticated(operations_doc), methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", authenticated(logout), methods=["POST"]),
        Route("/", authenticated(home), methods=["GET"]),
        Route("/search", authenticated(search), methods=["GET"]),
        Route("/person/{golden_id}", authenticated(person), methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    for add_routes in options.extra_pages.values():
        routes += add_routes(render, authenticated, locked)

    async def not_found(request: Request, exc: Exception) -> Response:
        session = sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return RedirectResponse("/login", status_code=303)
        return render(request, "missing.html", 404, session, reason="There is no such page.")

    app = Starlette(routes=routes, middleware=[Middleware(AccessLog), Middleware(SecurityHeaders)],
                    exception_handlers={404: not_found})
    app.state.sessions = sessions
    return app


class AccessLog:
    """One line per request: method, path without its query (a search's query is a name),
    status and milliseconds. Never cookies, forms or query strings."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [0]

        async def noting(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            log.info("console: %s %s %d %.1f ms", scope["method"], scope["path"], status[0],
                     (time.perf_counter() - started) * 1000)
