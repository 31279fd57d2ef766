"""The console's web defences: response headers, cookies and CSRF tokens.

- Every response carries a Content-Security-Policy that allows nothing but the console's own
  style sheet and images (no script at all: the pages are plain forms), forbids framing and
  restricts form targets to the console itself; and ``Cache-Control: no-store`` and
  ``Referrer-Policy: no-referrer``, because the pages hold personal data and a search's URL
  holds a name.
- Cookies are ``Secure`` (the console serves HTTPS only), ``HttpOnly`` and
  ``SameSite=Strict``; they hold random ids, never data.
- Every form carries a CSRF token: the session's (synchroniser token) once logged in, and on
  the login form a token that must equal the ``tipsync_login`` cookie set with the form
  (double submit), so a login cannot be forced on a browser either.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "strict-transport-security": "max-age=31536000",
    "cross-origin-opener-policy": "same-origin",
}
SESSION_COOKIE = "tipsync_session"
LOGIN_COOKIE = "tipsync_login"
CSRF_FIELD = "csrf_token"
COOKIE_OPTIONS: dict[str, Any] = {"secure": True, "httponly": True, "samesite": "strict",
                                  "path": "/"}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; a missing token never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


class SecurityHeaders:
    """ASGI middleware: ``HEADERS`` on every HTTP response, error pages included."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((name.encode(), value.encode()) for name, value in HEADERS.items()
                      if name.encode() not in present),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)
