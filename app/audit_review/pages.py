"""QA's page for the periodic audit-trail review (AUD-8): a period's trail, filtered and
exceptions first, page by page, and the e-signed sign-off of the period."""

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from app.audit_review import service
from app.audit_review.schemas import AuditReviewCreate
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.errors import InvalidRequest
from app.pipeline import Router, SessionDep
from app.signatures.schemas import Password
from app.types import Id, LongText, ShortText, Timestamp
from app.web import page_require, render

router = Router(include_in_schema=False)

Reviewer = Annotated[Principal, Depends(page_require(Permission.AUDIT_REVIEW))]
PAGE = 100


@router.get("/qa/audit-review", response_class=HTMLResponse)
def review_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Reviewer,
    start: Annotated[Timestamp | None, Query(alias="from")] = None,
    patient: Id | None = None,
    batch: Id | None = None,
    action: ShortText | None = None,
    user: ShortText | None = None,
    exceptions_only: bool = False,
    offset: Annotated[int, Query(ge=0, le=2_000_000_000)] = 0,
) -> HTMLResponse:
    """The oldest pending period (or the one starting `from`), its trail and the sign form."""
    waiting = service.pending(session, settings)
    if start is None and waiting.periods:
        start = waiting.periods[0].period_start
    period = service.period_of(settings, start) if start is not None else None
    page = (
        service.events_page(
            session,
            start=period[0],
            end=period[1],
            filters=service.EventFilters(patient, batch, action, user, exceptions_only),
            limit=PAGE,
            offset=offset,
        )
        if period is not None
        else None
    )
    return render(
        request,
        "audit_review/review.html",
        principal=principal,
        pending=waiting,
        page=page,
        reviews=service.reviews(session, limit=10),
    )


@router.post("/qa/audit-review")
def sign(
    session: SessionDep,
    settings: SettingsDep,
    principal: Reviewer,
    period_start: Annotated[datetime, Form()],
    period_end: Annotated[datetime, Form()],
    password: Annotated[Password, Form()],
    comment: Annotated[LongText | None, Form()] = None,
) -> RedirectResponse:
    """The same e-signed sign-off as the API."""
    try:
        data = AuditReviewCreate(
            period_start=period_start, period_end=period_end, password=password, comment=comment
        )
    except ValidationError as exc:
        raise InvalidRequest(f"The form is not valid: {exc.errors()[0]['msg']}.") from exc
    service.sign(session, settings, actor=principal.user, data=data)
    return RedirectResponse("/qa/audit-review", status_code=303)
