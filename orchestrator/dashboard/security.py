"""Who may see the dashboard: Host/Origin checks, token auth, and the security headers.

- Bound to a loopback address (the default), requests must name a loopback host
  (``127.0.0.1``, ``localhost``, ``[::1]``): a DNS-rebinding page cannot read the state.
- With ``MODQ_DASHBOARD_TOKEN`` set (required by Settings for any other address), every page
  but ``/healthz``, ``/login`` and the static assets needs ``Authorization: Bearer <token>`` or
  the session cookie that ``POST /login`` sets (an HMAC of the token, never the token itself).
- The event stream, the JSON API and every non-GET request refuse a cross-origin ``Origin``.
- Every response carries a CSP without inline script, ``nosniff``, no framing, no referrer.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.settings import Settings

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
SESSION_COOKIE = "modq_dashboard_session"
PUBLIC_PATHS = frozenset({"/healthz", "/login"})
PUBLIC_PREFIXES = ("/static/",)
ORIGIN_CHECKED = frozenset({"/events", "/api/state", "/metrics"})
MAX_LOGIN_BODY = 4096

LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>modq dashboard: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/style.css"></head>
<body class="login"><main><h1>modq dashboard</h1>{error}
<form method="post" action="/login"><label>Token
<input type="password" name="token" autocomplete="current-password" autofocus required></label>
<button type="submit">Sign in</button></form></main></body></html>
"""
LOGIN_ERROR = '<p class="error" role="alert">That token is not valid.</p>'


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or address, no port) is this machine's loopback."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The host part of a ``Host`` header value (``[::1]:8765`` → ``::1``)."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if ":" in host_header else host_header


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """The checks of one dashboard process (pure; the middleware applies them)."""

    token: str | None
    loopback_only: bool
    """Requests must name a loopback host (the server binds to one)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        """The policy for ``settings``' bind address and token."""
        token = settings.dashboard_token
        return cls(
            token=token.get_secret_value() if token is not None else None,
            loopback_only=is_loopback_host(settings.dashboard_host),
        )

    def session_value(self) -> str:
        """The session cookie's value: an HMAC of the token (the token never leaves)."""
        if self.token is None:
            return ""
        return hmac.new(
            self.token.encode(), b"modq-dashboard-session-v1", hashlib.sha256
        ).hexdigest()

    def token_matches(self, candidate: str) -> bool:
        """Constant-time comparison with the configured token."""
        return self.token is not None and hmac.compare_digest(
            candidate.encode(), self.token.encode()
        )

    def authorized(self, headers: Headers, cookies: dict[str, str]) -> bool:
        """Whether the request carries the token (bearer) or a valid session cookie."""
        if self.token is None:
            return True
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(credentials.strip()):
            return True
        cookie = cookies.get(SESSION_COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self.session_value().encode())

    def host_allowed(self, host_header: str | None) -> bool:
        """The ``Host`` check (DNS rebinding)."""
        if not host_header:
            return False
        return not self.loopback_only or is_loopback_host(host_name(host_header))

    @staticmethod
    def origin_allowed(origin: str | None, host_header: str | None) -> bool:
        """No ``Origin``, or one whose host and port are the request's ``Host``."""
        if origin is None:
            return True
        if not host_header or origin == "null":
            return False
        return urlsplit(origin).netloc.lower() == host_header.lower()


def parse_cookies(header: str) -> dict[str, str]:
    """``Cookie`` header → name → value (first wins)."""
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name not in cookies:
            cookies[name] = value
    return cookies


def login_token(body: bytes) -> str:
    """The ``token`` field of an ``application/x-www-form-urlencoded`` login body."""
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=5)
    values = fields.get("token", [""])
    return values[0]


def login_page(failed: bool) -> Response:
    """The sign-in form (no script at all)."""
    html = LOGIN_PAGE.replace("{error}", LOGIN_ERROR if failed else "")
    return Response(html, media_type="text/html; charset=utf-8", headers=_no_store())


def login_result(policy: AccessPolicy, token: str, secure: bool) -> Response:
    """Redirect home with the session cookie, or back to the form saying it failed."""
    if not policy.token_matches(token):
        return RedirectResponse("/login?failed=1", status_code=303, headers=_no_store())
    response = RedirectResponse("/", status_code=303, headers=_no_store())
    response.set_cookie(
        SESSION_COOKIE,
        policy.session_value(),
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    return response


def _no_store() -> dict[str, str]:
    return {"Cache-Control": "no-store"}


class SecurityMiddleware:
    """Pure ASGI middleware (streaming-safe): checks first, headers on every response."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        send_with_headers = _add_headers(send, SECURITY_HEADERS)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        path: str = scope["path"]
        host = headers.get("host")
        if not self.policy.host_allowed(host):
            return PlainTextResponse("forbidden host", status_code=403)
        checked = path in ORIGIN_CHECKED or scope["method"] not in ("GET", "HEAD")
        if checked and not self.policy.origin_allowed(headers.get("origin"), host):
            return PlainTextResponse("cross-origin request refused", status_code=403)
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return None
        if self.policy.authorized(headers, parse_cookies(headers.get("cookie", ""))):
            return None
        if path == "/" and scope["method"] in ("GET", "HEAD"):
            return RedirectResponse("/login", status_code=303)
        return PlainTextResponse(
            "authentication required", status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )


def _add_headers(send: Send, extra: Iterable[tuple[bytes, bytes]]) -> Send:
    extra = tuple(extra)

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            headers = list(message.get("headers", []))
            headers.extend((k, v) for k, v in extra if k not in present)
            message = {**message, "headers": headers}
        await send(message)

    return wrapped
