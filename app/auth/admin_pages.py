"""The administrator's user pages (issue 12 item 7): every account with its roles, its state in
words and its last sign-in; creating an account (who must choose their own password at first
sign-in), changing its roles with a reason, deactivating, reactivating, unlocking and resetting
its password. Each form builds the JSON API's own request schema and calls the service the API
calls (app/auth/api.py); a refusal is shown on the page that asked, read afresh beside it, and
changes nothing (app/pageflow.py)."""

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app import pageflow
from app.auth import passwords, service
from app.auth.api import user_public
from app.auth.models import User
from app.auth.permissions import Permission, Role
from app.auth.repository import last_sign_ins
from app.auth.schemas import PasswordReset, UserCreate, UserPublic, UserRolesSet
from app.auth.service import Principal
from app.config import Settings, SettingsDep
from app.errors import HomewardError
from app.pipeline import Router, SessionDep
from app.types import Id
from app.web import detached, form_model, refusals_shown_on, render_refusable

router = Router(include_in_schema=False)

# What is refused before a page can be read (not an administrator, no such user, a malformed
# form) is shown here; what a form's act is refused is shown on the form's own page.
REFUSED = "admin/refused.html"
Admin = Annotated[Principal, Depends(refusals_shown_on(REFUSED, Permission.USERS_MANAGE))]
Text = Annotated[str, Form(max_length=4000)]
Secret = Annotated[str, Form(max_length=256)]
RolesField = Annotated[list[str] | None, Form(max_length=len(Role))]

# The sentence shown after each act, by the `done` of the redirect (never text from the URL).
NOTICES = {
    "created": "Account created. Its user must choose their own password at first sign-in.",
    "roles": "Roles changed; the reason is in the audit trail.",
    "deactivated": "Account deactivated: it cannot sign in and its open sessions are ended.",
    "reactivated": "Account reactivated: it can sign in again.",
    "unlocked": "Account unlocked: the failed attempts are counted from zero again.",
    "password_reset": (
        "Temporary password set: its open sessions are ended and its user must choose their "
        "own password at the next sign-in."
    ),
}
# Headlines for refusals that read otherwise on these pages (templates/refusal.html).
HEADLINES = {"conflict": "Not possible for this account"}


@dataclass(frozen=True, slots=True)
class Person:
    """A user as the administrator's pages show them."""

    user: UserPublic
    last_sign_in: datetime | None


def _people(session: Session, settings: Settings, principal: Principal) -> dict:
    users = {user.id: user for user in service.list_users(session) if user.id is not None}
    roles = service.roles_by_user(session, list(users))
    signed_in = last_sign_ins(session, list(users))
    people = [
        Person(user_public(user, roles[user_id], settings), signed_in.get(user_id))
        for user_id, user in users.items()
    ]
    return {"people": people, "principal": detached(principal)}


def _person(session: Session, settings: Settings, principal: Principal, user_id: int) -> dict:
    user = service.get_user(session, user_id)
    roles = sorted(service.roles_of(session, user_id))
    signed_in = last_sign_ins(session, [user_id]).get(user_id)
    return {
        "person": Person(user_public(user, roles, settings), signed_in),
        "principal": detached(principal),
    }


async def _show_users(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    refusal: HomewardError | None = None,
    typed: dict | None = None,
) -> HTMLResponse:
    settings = request.app.state.settings
    shown = await pageflow.read(session, partial(_people, session, settings, principal))
    return render_refusable(
        request,
        "admin/users.html",
        refusal,
        refusal_headlines=HEADLINES,
        roles=list(Role),
        typed=typed or {},
        **shown,
    )


async def _show_user(
    request: Request,
    session: Session,
    principal: Principal,
    user_id: int,
    *,
    refusal: HomewardError | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    settings = request.app.state.settings
    shown = await pageflow.read(session, partial(_person, session, settings, principal, user_id))
    return render_refusable(
        request,
        "admin/user.html",
        refusal,
        refusal_headlines=HEADLINES,
        notice=notice,
        roles=list(Role),
        **shown,
    )


def _to_user(user_id: int, done: str) -> RedirectResponse:
    return RedirectResponse(f"/admin/users/{user_id}?done={done}", status_code=303)


async def _act_on_user(
    request: Request, session: Session, principal: Principal, user_id: int, act, done: str
) -> Response:
    """`act` on user `user_id`; then that user's page with the act's notice, or its refusal."""
    return await pageflow.act_or_show(
        session,
        act,
        done=lambda _: _to_user(user_id, done),
        show=lambda refusal: _show_user(request, session, principal, user_id, refusal=refusal),
    )


@router.get("/admin/users", response_class=HTMLResponse)
async def users_page(request: Request, session: SessionDep, principal: Admin) -> Response:
    principal = await pageflow.signed_in(session, principal)
    return await _show_users(request, session, principal)


@router.post("/admin/users", response_class=HTMLResponse)
async def create_user(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Admin,
    username: Annotated[str, Form(max_length=64)] = "",
    full_name: Annotated[str, Form(max_length=200)] = "",
    password: Secret = "",
    roles: RolesField = None,
) -> Response:
    """POST /api/v1/users from a form: the account must change its password at first sign-in."""
    principal = await pageflow.signed_in(session, principal)
    chosen = roles or []

    def act() -> int:
        data = form_model(
            UserCreate, username=username, full_name=full_name, password=password, roles=chosen
        )
        user = service.create_user(
            session, settings, actor=principal.user, must_change_password=True, **data.model_dump()
        )
        return user.id or 0

    typed = {"username": username, "full_name": full_name, "roles": chosen}  # never the password
    return await pageflow.act_or_show(
        session,
        act,
        done=lambda user_id: _to_user(user_id, "created"),
        show=lambda refusal: _show_users(request, session, principal, refusal=refusal, typed=typed),
    )


@router.get("/admin/users/{user_id}", response_class=HTMLResponse)
async def user_page(
    request: Request, session: SessionDep, principal: Admin, user_id: Id, done: str = ""
) -> Response:
    principal = await pageflow.signed_in(session, principal)
    return await _show_user(request, session, principal, user_id, notice=NOTICES.get(done))


@router.post("/admin/users/{user_id}/roles", response_class=HTMLResponse)
async def change_roles(
    request: Request,
    session: SessionDep,
    principal: Admin,
    user_id: Id,
    roles: RolesField = None,
    reason: Text = "",
) -> Response:
    """PUT /api/v1/users/{id}/roles from a form: the new roles and why (SEC-2)."""
    principal = await pageflow.signed_in(session, principal)

    def act() -> User:
        data = form_model(UserRolesSet, roles=roles or [], reason=reason)
        return service.set_roles(
            session, actor=principal.user, user_id=user_id, roles=data.roles, reason=data.reason
        )

    return await _act_on_user(request, session, principal, user_id, act, "roles")


def _set_active(session: Session, principal: Principal, user_id: int, active: bool) -> None:
    user = service.get_user(session, user_id)
    service.set_active(session, actor=principal.user, user=user, active=active)


@router.post("/admin/users/{user_id}/deactivate", response_class=HTMLResponse)
async def deactivate(
    request: Request, session: SessionDep, principal: Admin, user_id: Id
) -> Response:
    principal = await pageflow.signed_in(session, principal)
    act = partial(_set_active, session, principal, user_id, False)
    return await _act_on_user(request, session, principal, user_id, act, "deactivated")


@router.post("/admin/users/{user_id}/reactivate", response_class=HTMLResponse)
async def reactivate(
    request: Request, session: SessionDep, principal: Admin, user_id: Id
) -> Response:
    principal = await pageflow.signed_in(session, principal)
    act = partial(_set_active, session, principal, user_id, True)
    return await _act_on_user(request, session, principal, user_id, act, "reactivated")


@router.post("/admin/users/{user_id}/unlock", response_class=HTMLResponse)
async def unlock(request: Request, session: SessionDep, principal: Admin, user_id: Id) -> Response:
    principal = await pageflow.signed_in(session, principal)

    def act() -> None:
        service.unlock(session, actor=principal.user, user=service.get_user(session, user_id))

    return await _act_on_user(request, session, principal, user_id, act, "unlocked")


@router.post("/admin/users/{user_id}/reset-password", response_class=HTMLResponse)
async def reset_password(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Admin,
    user_id: Id,
    new_password: Secret = "",
    reason: Text = "",
) -> Response:
    """POST /api/v1/users/{id}/reset-password from a form: a temporary password, with why."""
    principal = await pageflow.signed_in(session, principal)

    def act() -> User:
        data = form_model(PasswordReset, new_password=new_password, reason=reason)
        return passwords.reset_password(
            session,
            settings,
            actor=principal.user,
            user_id=user_id,
            password=data.new_password,
            reason=data.reason,
        )

    return await _act_on_user(request, session, principal, user_id, act, "password_reset")
