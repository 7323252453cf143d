from typing import Annotated

from fastapi import Depends
from fastapi.security import OAuth2PasswordRequestForm

from app.auth import service
from app.auth.deps import CurrentPrincipal, TokenDep, UserManager
from app.auth.models import User
from app.auth.schemas import TokenPublic, UserCreate, UserPublic, UserRolesSet
from app.config import SettingsDep
from app.pipeline import Router, SessionDep
from app.types import Id

router = Router(tags=["auth"])


def user_public(user: User, roles: list) -> UserPublic:
    assert user.id is not None
    return UserPublic(
        id=user.id,
        username=user.username,
        full_name=user.full_name,
        roles=sorted(roles),
        active=user.active,
        locked=user.locked,
    )


@router.post("/auth/token", response_model=TokenPublic)
def issue_token(
    session: SessionDep,
    settings: SettingsDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> TokenPublic:
    token = service.login(session, settings, username=form.username, password=form.password)
    return TokenPublic(access_token=token, expires_after_idle_minutes=settings.token_idle_minutes)


@router.post("/auth/logout", status_code=204)
def logout(
    session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal, token: TokenDep
) -> None:
    service.logout(session, settings, principal=principal, token=token)


@router.get("/auth/me", response_model=UserPublic)
def me(principal: CurrentPrincipal) -> UserPublic:
    return user_public(principal.user, list(principal.roles))


@router.get("/users", response_model=list[UserPublic])
def list_users(session: SessionDep, _: UserManager) -> list[UserPublic]:
    users = service.list_users(session)
    roles = service.roles_by_user(session, [user.id for user in users if user.id is not None])
    return [user_public(user, roles[user.id]) for user in users if user.id is not None]


@router.post("/users", response_model=UserPublic, status_code=201)
def create_user(
    body: UserCreate, session: SessionDep, settings: SettingsDep, admin: UserManager
) -> UserPublic:
    user = service.create_user(session, settings, actor=admin.user, **body.model_dump())
    return user_public(user, body.roles)


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
