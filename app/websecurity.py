"""What every answer tells the browser, and what a page form must prove (ADR 0019).

- Headers on every response: a Content-Security-Policy without inline script and with
  `frame-ancestors 'none'`, `nosniff`, `Referrer-Policy`, `X-Frame-Options`, HSTS over TLS, and
  `Cache-Control: no-store` on everything but static assets (pages, documents and JSON carry
  patient data: Back after logout must not show it from the cache).
- CSRF on page forms: a random token in an HttpOnly, SameSite=Strict cookie, echoed by every
  form as a hidden `csrf_token` field (double submit), and a foreign `Origin` refused. The JSON
  API takes bearer tokens, which a foreign page cannot send, so it needs neither.
"""

import hmac
import secrets
from http.cookies import SimpleCookie

from fastapi import Request
from markupsafe import Markup
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import HomewardError

CSRF_COOKIE = "homeward_csrf"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# Stand-alone documents (certificate, trace report) carry their style inline, so that a saved
# copy prints the same; they run no script at all.
DOCUMENT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DOCUMENT_HEADERS = {"Content-Security-Policy": DOCUMENT_CSP}
_STATIC_PREFIX = "/static/"
_API_PREFIX = "/api/"


class CsrfRefused(HomewardError):
    code = "csrf_failed"
    status = 403


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope["headers"]:
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:
                return None
            morsel = jar.get(name)
            if morsel is not None:
                return morsel.value
    return None


def _valid_token(token: str | None) -> bool:
    return token is not None and 32 <= len(token) <= 64 and token.isascii()


class SecurityHeaders:
    """Pure ASGI (no per-request task or body copy: the scan endpoint is the lab's hot path)."""

    def __init__(self, app: ASGIApp, *, secure_cookie: bool) -> None:
        self.app = app
        self.secure_cookie = secure_cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        page = not path.startswith((_API_PREFIX, _STATIC_PREFIX))
        new_token: str | None = None
        if page:
            token = _cookie(scope, CSRF_COOKIE)
            if not _valid_token(token):
                token = new_token = secrets.token_urlsafe(32)
            scope.setdefault("state", {})["csrf_token"] = token
        tls = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Content-Security-Policy", PAGE_CSP)
                if not path.startswith(_STATIC_PREFIX):
                    headers.setdefault("Cache-Control", "no-store")
                if tls:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
                if new_token is not None:
                    secure = "; Secure" if self.secure_cookie or tls else ""
                    headers.append(
                        "Set-Cookie",
                        f"{CSRF_COOKIE}={new_token}; Path=/; HttpOnly; SameSite=Strict{secure}",
                    )
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _origin_of(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


async def csrf_protect(request: Request) -> None:
    """A page form's POST comes from this site: no foreign Origin, and the form's token is the
    one in this browser's cookie. Runs before authentication and the unit of work."""
    if request.method not in UNSAFE_METHODS:
        return
    origin = request.headers.get("origin")
    if origin is not None and origin != _origin_of(request):
        raise CsrfRefused(
            "This form was sent from another site; nothing was done. Open Homeward and try again."
        )
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    expected = getattr(request.state, "csrf_token", None)
    if not isinstance(sent, str) or expected is None or not hmac.compare_digest(sent, expected):
        raise CsrfRefused(
            "This form has expired or did not come from this page; nothing was done. "
            "Reload the page and send it again."
        )


def csrf_field(request: Request) -> Markup:
    """The hidden field every page form carries (a jinja global)."""
    token = getattr(request.state, "csrf_token", "")
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token)
