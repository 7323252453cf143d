from dataclasses import asdict
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordRequestForm

from app.auth import passwords, policy, security, service, signin
from app.auth.deps import CurrentPrincipal, SignedIn, SignInReportReader, TokenDep, UserManager
from app.auth.models import User
from app.auth.schemas import (
    PasswordChange,
    PasswordReset,
    SignInEvent,
    SignInReport,
    TokenPublic,
    UserCreate,
    UserPublic,
    UserRolesSet,
)
from app.config import Settings, SettingsDep
from app.pipeline import Router, SessionDep
from app.types import Id, Timestamp

router = Router(tags=["auth"])


def user_public(user: User, roles: list, settings: Settings | None = None) -> UserPublic:
    assert user.id is not None
    locked = service.is_locked(user)
    return UserPublic(
        id=user.id,
        username=user.username,
        full_name=user.full_name,
        roles=sorted(roles),
        active=user.active,
        locked=locked,
        locked_until=user.locked_until if locked else None,
        credential_change_required=user.password_change_required,
        credential_expires_at=policy.expires_at(settings, user) if settings else None,
    )


def client_source(request: Request) -> str | None:
    """Where a sign-in comes from: the client's address (per-source throttling, SEC-4)."""
    return request.client.host if request.client else None


@router.post("/auth/token", response_model=TokenPublic)
def issue_token(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> TokenPublic:
    signed_in = signin.login(
        session,
        settings,
        username=form.username,
        password=form.password,
        source=client_source(request),
    )
    return TokenPublic(
        access_token=signed_in.token,
        expires_after_idle_minutes=settings.token_idle_minutes,
        credential_change_required=signed_in.password_change is not None,
    )


@router.post("/auth/password", status_code=204)
def change_password(
    body: PasswordChange,
    session: SessionDep,
    settings: SettingsDep,
    principal: SignedIn,
    token: TokenDep,
) -> None:
    passwords.change_password(
        session,
        settings,
        principal=principal,
        current_password=body.current_password,
        new_password=body.new_password,
        token_digest=security.token_digest(settings, token),
    )


@router.get("/auth/sign-in-report", response_model=SignInReport)
def sign_in_report(
    session: SessionDep,
    _: SignInReportReader,
    since: Annotated[Timestamp | None, Query()] = None,
) -> SignInReport:
    found = signin.report(session, since=since)
    return SignInReport(
        since=found.since,
        failed=found.failed,
        locks=found.locks,
        events=[SignInEvent(**asdict(row)) for row in found.events],
    )


@router.post("/auth/logout", status_code=204)
def logout(
    session: SessionDep, settings: SettingsDep, principal: SignedIn, token: TokenDep
) -> None:
    service.logout(session, settings, principal=principal, token=token)


@router.get("/auth/me", response_model=UserPublic)
def me(principal: CurrentPrincipal, settings: SettingsDep) -> UserPublic:
    return user_public(principal.user, list(principal.roles), settings)


@router.get("/users", response_model=list[UserPublic])
def list_users(session: SessionDep, _: UserManager) -> list[UserPublic]:
    users = service.list_users(session)
    roles = service.roles_by_user(session, [user.id for user in users if user.id is not None])
    return [user_public(user, roles[user.id]) for user in users if user.id is not None]


@router.post("/users", response_model=UserPublic, status_code=201)
def create_user(
    body: UserCreate, session: SessionDep, settings: SettingsDep, admin: UserManager
) -> UserPublic:
    user = service.create_user(
        session, settings, actor=admin.user, must_change_password=True, **body.model_dump()
    )
    return user_public(user, body.roles, settings)


@router.put("/users/{user_id}/roles", response_model=UserPublic)
def set_roles(
    user_id: Id, body: UserRolesSet, session: SessionDep, admin: UserManager
) -> UserPublic:
    user = service.set_roles(
        session, actor=admin.user, user_id=user_id, roles=body.roles, reason=body.reason
    )
    return user_public(user, body.roles)


def _set_active(user_id: int, active: bool, session: SessionDep, admin: UserManager) -> UserPublic:
    user = service.get_user(session, user_id)
    service.set_active(session, actor=admin.user, user=user, active=active)
    return user_public(user, sorted(service.roles_of(session, user_id)))


@router.post("/users/{user_id}/deactivate", response_model=UserPublic)
def deactivate(user_id: Id, session: SessionDep, admin: UserManager) -> UserPublic:
    return _set_active(user_id, False, session, admin)


@router.post("/users/{user_id}/reactivate", response_model=UserPublic)
def reactivate(user_id: Id, session: SessionDep, admin: UserManager) -> UserPublic:
    return _set_active(user_id, True, session, admin)


@router.post("/users/{user_id}/unlock", response_model=UserPublic)
def unlock(user_id: Id, session: SessionDep, admin: UserManager) -> UserPublic:
    user = service.get_user(session, user_id)
    service.unlock(session, actor=admin.user, user=user)
    return user_public(user, sorted(service.roles_of(session, user_id)))


@router.post("/users/{user_id}/reset-password", response_model=UserPublic)
def reset_password(
    user_id: Id, body: PasswordReset, session: SessionDep, settings: SettingsDep, admin: UserManager
) -> UserPublic:
    user = passwords.reset_password(
        session,
        settings,
        actor=admin.user,
        user_id=user_id,
        password=body.new_password,
        reason=body.reason,
    )
    return user_public(user, sorted(service.roles_of(session, user_id)), settings)
