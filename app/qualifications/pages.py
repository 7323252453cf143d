"""QA's qualification page (SEC-5): who is qualified for what until when; grant and revoke."""

from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from app.auth import service as auth
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import Settings, SettingsDep
from app.errors import InvalidRequest
from app.pipeline import Router, SessionDep
from app.qualifications import service
from app.qualifications.schemas import Duty, QualificationGrant
from app.web import page_require, render

router = Router(include_in_schema=False)

Reader = Annotated[Principal, Depends(page_require(Permission.QUALIFICATION_READ))]
Granter = Annotated[Principal, Depends(page_require(Permission.QUALIFICATION_GRANT))]
Text = Annotated[str, Form(max_length=4000)]


def end_of_day(settings: Settings, day: str) -> datetime:
    """The end of the calendar day `day` (YYYY-MM-DD) in the facility's time zone: a date typed
    on a page is valid through that day."""
    try:
        parsed = date.fromisoformat(day)
    except ValueError as exc:
        raise InvalidRequest(f"{day!r} is not a date (YYYY-MM-DD).") from exc
    zone = ZoneInfo(settings.display_timezone)
    return datetime.combine(parsed + timedelta(days=1), time(), tzinfo=zone)


@router.get("/qualifications", response_class=HTMLResponse)
def qualifications_page(request: Request, session: SessionDep, principal: Reader) -> HTMLResponse:
    users = (
        auth.list_users(session) if Permission.QUALIFICATION_GRANT in principal.permissions else []
    )
    return render(
        request,
        "qualifications/index.html",
        principal=principal,
        rows=service.listing(session),
        users=users,
        duties=list(Duty),
    )


@router.post("/qualifications/grant")
def grant(
    session: SessionDep,
    settings: SettingsDep,
    principal: Granter,
    user_id: Annotated[int, Form(ge=1, le=2_147_483_647)],
    duties: Annotated[list[str], Form(max_length=len(Duty))],
    expires_on: Annotated[str, Form(max_length=10)],
    reason: Text,
) -> RedirectResponse:
    try:
        data = QualificationGrant(
            duties=duties, expires_at=end_of_day(settings, expires_on), reason=reason
        )
    except ValidationError as exc:
        raise InvalidRequest(f"The form is not valid: {exc}.") from exc
    service.grant(session, actor=principal.user, user_id=user_id, data=data)
    return RedirectResponse("/qualifications", status_code=303)


@router.post("/qualifications/{qualification_id}/revoke")
def revoke(
    session: SessionDep,
    principal: Granter,
    qualification_id: int,
    reason: Annotated[str, Form(min_length=1, max_length=4000)],
) -> RedirectResponse:
    service.revoke(
        session, actor=principal.user, qualification_id=qualification_id, reason=reason.strip()
    )
    return RedirectResponse("/qualifications", status_code=303)
