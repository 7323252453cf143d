from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches import service as batches
from app.clinic import board, service
from app.clinic.schemas import (
    BedsideCheck,
    BedsidePublic,
    InfusionCreate,
    InfusionPublic,
    PlanCreate,
    PlannedInfusionPublic,
    ReadinessRow,
    Reschedule,
)
from app.config import SettingsDep
from app.db import SessionDep
from app.notifications import service as notifications
from app.patients import service as patients
from app.trace import report
from app.types import Id

router = APIRouter(tags=["clinic"])

Board = Annotated[Principal, Depends(require(Permission.CLINIC_BOARD))]
Verifier = Annotated[Principal, Depends(require(Permission.INFUSION_VERIFY))]
Infuser = Annotated[Principal, Depends(require(Permission.INFUSION_RECORD))]
Planner = Annotated[Principal, Depends(require(Permission.INFUSION_PLAN))]
Reader = Annotated[Principal, Depends(require(Permission.BATCH_READ))]
Tracer = Annotated[Principal, Depends(require(Permission.TRACE_REPORT))]
WebhookReader = Annotated[Principal, Depends(require(Permission.WEBHOOKS_READ))]


@router.get("/clinic/readiness", response_model=list[ReadinessRow])
def readiness(session: SessionDep, settings: SettingsDep, _: Board) -> list[ReadinessRow]:
    """Per patient: biopsy, batch state, QC progress, release, doses and plan, and `ready` with
    the reason when not (CLN-1)."""
    return board.readiness(session, settings)


@router.post("/infusions/verify", response_model=BedsidePublic)
def verify(body: BedsideCheck, session: SessionDep, principal: Verifier) -> BedsidePublic:
    """The bedside check (COI-6), in order: code, patient, release, not infused, at the clinic,
    not expired. Every attempt is audited."""
    return service.verify(session, actor=principal.user, data=body)


@router.post("/infusions", response_model=InfusionPublic, status_code=201)
def infuse(
    body: InfusionCreate, session: SessionDep, settings: SettingsDep, principal: Infuser
) -> InfusionPublic:
    """Record an infusion: the bedside check again, witnessed by a second clinician."""
    infusion = service.infuse(session, settings, actor=principal.user, data=body)
    return service.infusion_public(session, infusion)


@router.post(
    "/batches/{batch_id}/infusion-plan",
    response_model=list[PlannedInfusionPublic],
    status_code=201,
)
def plan(
    batch_id: Id, body: PlanCreate, session: SessionDep, settings: SettingsDep, p: Planner
) -> list[PlannedInfusionPublic]:
    """Plan the batch's doses from the protocol template (CLN-2)."""
    return service.plan(session, settings, actor=p.user, batch_id=batch_id, data=body)


@router.get("/batches/{batch_id}/infusion-plan", response_model=list[PlannedInfusionPublic])
def planned(batch_id: Id, session: SessionDep, _: Reader) -> list[PlannedInfusionPublic]:
    batches.get(session, batch_id)
    return service.planned_public(session, service.planned(session, [batch_id]))


@router.patch("/planned-infusions/{planned_id}", response_model=PlannedInfusionPublic)
def reschedule(
    planned_id: Id, body: Reschedule, session: SessionDep, p: Planner
) -> PlannedInfusionPublic:
    """Move a planned infusion, with a reason (audited)."""
    return service.reschedule(session, actor=p.user, planned_id=planned_id, data=body)


@router.get("/patients/{patient_id}/trace-report", response_class=Response)
def trace_report(
    patient_id: Id,
    session: SessionDep,
    _: Tracer,
    format: Annotated[Literal["html", "pdf"], Query()] = "html",
) -> Response:
    """From biopsy to every infusion and back (COI-7, 21 CFR 1271.290), as HTML or PDF."""
    patients.get(session, patient_id)
    found = report.build(session, patient_id)
    if format == "pdf":
        return Response(
            report.pdf(found),
            media_type="application/pdf",
            headers={"Content-Disposition": 'inline; filename="trace-report.pdf"'},
        )
    return HTMLResponse(report.html(found))


@router.get("/webhooks/deliveries")
def webhook_deliveries(session: SessionDep, _: WebhookReader) -> list[dict[str, Any]]:
    """The delivery log of outbound notifications, newest first, with every attempt."""
    return notifications.deliveries(session)
