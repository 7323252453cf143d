"""Who is calling, and may they? Every protected route depends on `require(permission)`."""

from collections.abc import Awaitable, Callable
from functools import partial, wraps
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session

from app.auth import service
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import Settings, SettingsDep
from app.errors import NotAuthenticated, PasswordChangeRequired
from app.pipeline import Deferred, SessionDep

TOKEN_COOKIE = "homeward_token"

bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def request_token(request: Request, header_token: str | None = Depends(bearer)) -> str:
    """The bearer token of the request: the Authorization header, or the pages' cookie."""
    token = header_token or request.cookies.get(TOKEN_COOKIE)
    if not token:
        raise NotAuthenticated("This call needs you to log in (a bearer token).")
    return token


TokenDep = Annotated[str, Depends(request_token)]


def principal_of(session: Session, settings: Settings, token: str) -> Deferred[Principal]:
    """The token's principal, read in the request's own unit of work (one thread call, one
    transaction with the route's work: app/pipeline.py, ADR 0014)."""
    return Deferred(session, lambda db: service.authenticate(db, settings, token))


def refuse_pending_change(principal: Principal) -> Principal:
    """403 `password_change_required` while the user must change their password (SEC-3)."""
    if principal.password_change is not None:
        raise PasswordChangeRequired(principal.password_change)
    return principal


async def signed_in_principal(
    session: SessionDep, settings: SettingsDep, token: TokenDep
) -> Deferred[Principal]:
    """The token's principal, even one who must change their password first: only the password
    change and logout accept it."""
    return principal_of(session, settings, token)


async def current_principal(
    session: SessionDep, settings: SettingsDep, token: TokenDep
) -> Deferred[Principal]:
    return principal_of(session, settings, token).then(refuse_pending_change)


# Routes receive the resolved Principal (the unit of work resolves Deferred values).
SignedIn = Annotated[Principal, Depends(signed_in_principal)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def _permitted(permission: Permission, principal: Principal) -> Principal:
    principal.require(permission)
    return principal


def require(
    permission: Permission,
    source: Callable[..., Awaitable[Deferred[Principal]]] = current_principal,
) -> Callable[..., Awaitable[Deferred[Principal]]]:
    """A dependency that admits only principals (from `source`) whose roles grant `permission`.

    It takes `source`'s own parameters (`functools.wraps`: FastAPI reads the signature of the
    wrapped function) and calls it directly, rather than depending on it: one level less for
    FastAPI to solve on every request (docs/performance.md)."""
    permitted = partial(_permitted, permission)

    @wraps(source)
    async def dependency(*args: Any, **kwargs: Any) -> Deferred[Principal]:
        return (await source(*args, **kwargs)).then(permitted)

    dependency.permission = permission  # type: ignore[attr-defined]  # read by the route walk test
    return dependency


UserManager = Annotated[Principal, Depends(require(Permission.USERS_MANAGE))]
SignInReportReader = Annotated[Principal, Depends(require(Permission.SIGN_IN_REPORT))]
AuditReader = Annotated[Principal, Depends(require(Permission.AUDIT_READ))]
PatientAuditReader = Annotated[Principal, Depends(require(Permission.PATIENT_AUDIT_READ))]
