"""Login, logout, password change and sign-in report pages: the token lives in an HttpOnly,
SameSite=Strict cookie."""

from typing import Annotated

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from app.auth import passwords, security, service, signin
from app.auth.api import client_source
from app.auth.deps import TOKEN_COOKIE
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.errors import InvalidRequest
from app.pipeline import Router, SessionDep
from app.types import Timestamp
from app.web import page_require, render, signed_in_page_principal

router = Router(include_in_schema=False)

PageSignedIn = Annotated[Principal, Depends(signed_in_page_principal)]
PageReportReader = Annotated[Principal, Depends(page_require(Permission.SIGN_IN_REPORT))]


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return render(request, "auth/login.html")


@router.post("/login", response_model=None)
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
) -> RedirectResponse:
    signed_in = signin.login(
        session, settings, username=username, password=password, source=client_source(request)
    )
    # A user who must change their password goes there first (every other page sends them back).
    target = "/password" if signed_in.password_change else "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        TOKEN_COOKIE,
        signed_in.token,
        httponly=True,
        samesite="strict",
        secure=settings.environment == "production",
    )
    return response


@router.post("/logout")
def logout(
    request: Request, session: SessionDep, settings: SettingsDep, principal: PageSignedIn
) -> RedirectResponse:
    token = request.cookies.get(TOKEN_COOKIE, "")
    service.logout(session, settings, principal=principal, token=token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE)
    return response


@router.get("/password", response_class=HTMLResponse)
def password_form(request: Request, principal: PageSignedIn) -> HTMLResponse:
    return render(request, "auth/password.html", principal=principal)


@router.post("/password", response_model=None)
def change_password(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PageSignedIn,
    current_password: Annotated[str, Form(max_length=256)],
    new_password: Annotated[str, Form(max_length=256)],
    repeat_password: Annotated[str, Form(max_length=256)],
) -> RedirectResponse:
    if new_password != repeat_password:
        raise InvalidRequest("The two new passwords differ; type the same one twice.")
    passwords.change_password(
        session,
        settings,
        principal=principal,
        current_password=current_password,
        new_password=new_password,
        token_digest=security.token_digest(settings, request.cookies.get(TOKEN_COOKIE, "")),
    )
    return RedirectResponse("/", status_code=303)


@router.get("/sign-in-report", response_class=HTMLResponse)
def sign_in_report(
    request: Request,
    session: SessionDep,
    principal: PageReportReader,
    since: Annotated[Timestamp | None, Query()] = None,
) -> HTMLResponse:
    found = signin.report(session, since=since)
    return render(request, "auth/sign_in_report.html", principal=principal, report=found)
