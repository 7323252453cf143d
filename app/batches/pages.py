"""The batch record page: identity, vessels and (for QA) the audit timeline."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches import service
from app.db import SessionDep
from app.types import Id
from app.web import page_require, render

router = APIRouter(include_in_schema=False)

Reader = Annotated[Principal, Depends(page_require(Permission.BATCH_READ))]


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
def batch_record(
    request: Request, batch_id: Id, session: SessionDep, principal: Reader
) -> HTMLResponse:
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
        batch=service.detail(session, context),
        patient=context.patient,
        timeline=timeline,
    )
