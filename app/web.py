"""Server-rendered pages: templates, the local-time filter, page authentication, the home page."""

from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context

from app.auth.deps import TOKEN_COOKIE, principal_of, refuse_pending_change, require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches import service as batches
from app.clock import local_text
from app.errors import (
    AccountLocked,
    HomewardError,
    InvalidCredentials,
    NotAuthenticated,
    PasswordChangeRequired,
    TooManyAttempts,
)
from app.pipeline import Deferred, Router, SessionDep
from app.websecurity import csrf_field

STATIC_DIR = Path(__file__).parent / "static"
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@pass_context
def _local_time(context: dict[str, Any], value: datetime | None) -> str:
    """A UTC instant shown in the facility's display time zone (CONVENTIONS 11)."""
    if value is None:
        return ""
    return local_text(value, context["request"].app.state.settings.display_timezone)


templates.env.filters["local"] = _local_time
templates.env.globals["csrf_field"] = csrf_field


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status_code)


async def signed_in_page_principal(request: Request, session: SessionDep) -> Deferred[Principal]:
    """The logged-in user of a page, from the HttpOnly cookie set at login, even one who must
    change their password first (only the password page accepts that one)."""
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        raise NotAuthenticated("Log in to continue.")
    return principal_of(session, request.app.state.settings, token)


async def page_principal(request: Request, session: SessionDep) -> Deferred[Principal]:
    """The logged-in user of a page; one who must change their password is sent to do so."""
    return (await signed_in_page_principal(request, session)).then(refuse_pending_change)


PagePrincipal = Annotated[Principal, Depends(page_principal)]


def page_require(permission: Permission) -> Callable[..., Awaitable[Deferred[Principal]]]:
    """auth.deps.require for pages: the principal comes from the cookie."""
    return require(permission, source=page_principal)


def page_error(request: Request, exc: HomewardError) -> HTMLResponse | RedirectResponse:
    """A refusal on a page: back to the login form when not logged in, else an error page."""
    if isinstance(exc, NotAuthenticated):
        return RedirectResponse("/login", status_code=303)
    if isinstance(exc, PasswordChangeRequired):
        return RedirectResponse("/password", status_code=303)
    if isinstance(exc, (InvalidCredentials, AccountLocked, TooManyAttempts)) and (
        request.url.path == "/login"
    ):
        return render(request, "auth/login.html", status_code=exc.status, error=exc)
    if request.url.path == "/password":  # the form again, with what to fix
        return render(request, "auth/password.html", status_code=exc.status, error=exc)
    return render(request, "error.html", status_code=exc.status, error=exc)


router = Router(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, principal: PagePrincipal) -> HTMLResponse:
    can_read = Permission.BATCH_READ in principal.permissions
    recent = batches.find(session, limit=50) if can_read else []
    recent = [batches.summary(context) for context in recent]
    return render(request, "home.html", principal=principal, batches=recent)
