"""The batch record page: identity, vessels and (for QA) the audit timeline."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches import record, service
from app.config import SettingsDep
from app.pipeline import Router, SessionDep
from app.types import Id
from app.web import page_require, render

router = Router(include_in_schema=False)

Reader = Annotated[Principal, Depends(page_require(Permission.BATCH_READ))]


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
def batch_record(
    request: Request, batch_id: Id, session: SessionDep, settings: SettingsDep, principal: Reader
) -> HTMLResponse:
    """The electronic batch record as a page: what QA reads before release."""
    context = service.get(session, batch_id)
    timeline = (
        service.trail(session, context)
        if Permission.PATIENT_AUDIT_READ in principal.permissions
        else None
    )
    return render(
        request,
        "batches/record.html",
        principal=principal,
        record=record.batch_record(session, settings, batch_id),
        patient=context.patient,
        timeline=timeline,
    )
