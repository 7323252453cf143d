"""Server-rendered pages: templates, the local-time filter, page authentication, the home page."""

from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from pydantic import BaseModel, ValidationError

from app.auth.deps import TOKEN_COOKIE, principal_of, refuse_pending_change, require
from app.auth.models import User
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches import service as batches
from app.clock import local_text
from app.errors import (
    AccountLocked,
    HomewardError,
    InvalidCredentials,
    InvalidRequest,
    NotAuthenticated,
    PasswordChangeRequired,
    TooManyAttempts,
    told_in,
)
from app.pipeline import Deferred, Router, SessionDep
from app.websecurity import csrf_field

STATIC_DIR = Path(__file__).parent / "static"
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def local_time(value: datetime | None, zone: str) -> str:
    """A UTC instant as a person reads it: the facility's local time with its zone named
    (CONVENTIONS 11), e.g. `2026-03-14 09:30 CET`; nothing for no time."""
    if value is None:
        return ""
    return local_text(value, zone)


@pass_context
def _local_time(context: dict[str, Any], value: datetime | None) -> str:
    return local_time(value, context["request"].app.state.settings.display_timezone)


@pass_context
def _told(context: dict[str, Any], said: HomewardError | str) -> str:
    """A refusal's or a warning's sentence as a page shows it: any instant in it (`Told`) in
    local time, zone named."""
    zone = context["request"].app.state.settings.display_timezone
    return said.told_in(zone) if isinstance(said, HomewardError) else told_in(said, zone)


def number(value: object, decimals: int | None = None) -> str:
    """A quantity as a person reads it: thousands grouped, no stray `.0`
    (150000000.0 → `150,000,000`; 2.50 → `2.5`); `decimals` fixes the places. Anything not
    a number (a qualitative answer) is shown as it is."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if decimals is not None:
        return f"{value:,.{decimals}f}"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.3f}".rstrip("0").rstrip(".")


Schema = TypeVar("Schema", bound=BaseModel)


def form_model(schema: type[Schema], **fields: object) -> Schema:
    """A page form as the API's own request schema, so a page and the API are refused alike;
    its first problem in plain words (422 invalid_request)."""
    try:
        return schema(**fields)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = " ".join(str(part) for part in problem["loc"]).replace("_", " ") or "the form"
        raise InvalidRequest(f"Check the {where}: {problem['msg']}.") from exc


def typed_number(text: str, what: str) -> float | None:
    """A number typed on a page, a decimal comma accepted (6,5); None when left empty, a
    refusal in plain words when it is not a number."""
    typed = text.strip().replace(",", ".")
    if not typed:
        return None
    try:
        return float(typed)
    except ValueError as exc:
        raise InvalidRequest(f"The {what} {text!r} is not a number.") from exc


def parse_local_datetime(text: str, zone: str) -> datetime:
    """A date and time typed on a page (`2026-03-14T09:30`, as a datetime-local box sends it)
    read in the facility's zone, as an aware instant; a refusal in plain words otherwise."""
    try:
        typed = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidRequest(
            f"{text!r} is not a date and time; type it as 2026-03-14 09:30."
        ) from exc
    return typed if typed.tzinfo else typed.replace(tzinfo=ZoneInfo(zone))


def local_input(value: datetime, zone: str) -> str:
    """An instant as a `datetime-local` box shows it, in the facility's zone (2026-03-14T09:30)."""
    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")


templates.env.filters["local"] = _local_time
templates.env.filters["number"] = number
templates.env.filters["told"] = _told
templates.env.globals["csrf_field"] = csrf_field


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def render_refusable(
    request: Request, name: str, refusal: HomewardError | None, **context: Any
) -> HTMLResponse:
    """A page an act is sent from, read afresh: when the act was refused, in the refusal's
    status and with it as `error` (the page's templates include refusal.html for it)."""
    return render(
        request, name, status_code=refusal.status if refusal else 200, error=refusal, **context
    )


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


def detached(principal: Principal) -> Principal:
    """A copy of `principal` for a page's header, taken inside a unit of work: after a refusal's
    rollback the User row is expired and detached, and a page must never load it again."""
    return Principal(User(**principal.user.model_dump()), principal.roles)


def refusals_shown_on(
    template: str, permission: Permission
) -> Callable[..., Awaitable[Deferred[Principal]]]:
    """A page's permission dependency that also has its refusals shown on `template` (the
    form again, the refusal above it) instead of the bare error page: a person who is stopped
    stays where the next attempt is made. The error handler reads it from the request's state."""
    needed = page_require(permission)

    async def dependency(
        request: Request, principal: Annotated[Deferred[Principal], Depends(needed)]
    ) -> Deferred[Principal]:
        request.state.error_template = template

        def remember(resolved: Principal) -> Principal:
            request.state.principal = detached(resolved)
            return resolved

        return principal.then(remember)

    dependency.permission = permission  # type: ignore[attr-defined]  # as require's
    return dependency


def page_error(request: Request, exc: HomewardError) -> HTMLResponse | RedirectResponse:
    """A refusal on a page: back to the login form when not logged in, else the page that asked
    for it (`refusals_shown_on`) or the error page, inside the site's frame."""
    if isinstance(exc, NotAuthenticated):
        return RedirectResponse("/login", status_code=303)
    if isinstance(exc, PasswordChangeRequired):
        return RedirectResponse("/password", status_code=303)
    if isinstance(exc, (InvalidCredentials, AccountLocked, TooManyAttempts)) and (
        request.url.path == "/login"
    ):
        return render(request, "auth/login.html", status_code=exc.status, error=exc)
    template = getattr(request.state, "error_template", "error.html")
    if request.url.path == "/password":  # the form again, with what to fix
        template = "auth/password.html"
    principal = getattr(request.state, "principal", None)
    return render(request, template, status_code=exc.status, error=exc, principal=principal)


router = Router(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, principal: PagePrincipal) -> HTMLResponse:
    can_read = Permission.BATCH_READ in principal.permissions
    recent = batches.find(session, limit=50) if can_read else []
    recent = [batches.summary(context) for context in recent]
    return render(request, "home.html", principal=principal, batches=recent)
