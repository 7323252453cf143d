"""Login and logout pages: the token lives in an HttpOnly, SameSite=Strict cookie."""

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from app.auth import service
from app.auth.deps import TOKEN_COOKIE
from app.config import SettingsDep
from app.pipeline import Router, SessionDep
from app.web import PagePrincipal, render

router = Router(include_in_schema=False)


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
    token = service.login(session, settings, username=username, password=password)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        TOKEN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=settings.environment == "production",
    )
    return response


@router.post("/logout")
def logout(
    request: Request, session: SessionDep, settings: SettingsDep, principal: PagePrincipal
) -> RedirectResponse:
    token = request.cookies.get(TOKEN_COOKIE, "")
    service.logout(session, settings, principal=principal, token=token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE)
    return response
