from typing import Annotated

from fastapi import Depends, Request, Response

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches import service as batches
from app.clinic import board, service
from app.clinic.schemas import (
    PAGE_SIZE,
    BedsideCheck,
    BedsidePublic,
    InfusionCreate,
    InfusionPublic,
    PageLimit,
    PageOffset,
    PlanCreate,
    PlannedInfusionPublic,
    ReadinessRow,
    Reschedule,
)
from app.config import SettingsDep
from app.pipeline import Router, SessionDep
from app.types import Id

router = Router(tags=["clinic"])

Board = Annotated[Principal, Depends(require(Permission.CLINIC_BOARD))]
Verifier = Annotated[Principal, Depends(require(Permission.INFUSION_VERIFY))]
Infuser = Annotated[Principal, Depends(require(Permission.INFUSION_RECORD))]
Planner = Annotated[Principal, Depends(require(Permission.INFUSION_PLAN))]
Reader = Annotated[Principal, Depends(require(Permission.BATCH_READ))]


@router.get("/clinic/readiness", response_model=list[ReadinessRow])
def readiness(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    _: Board,
    limit: PageLimit = PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[ReadinessRow]:
    """Per patient in treatment, nearest an infusion first: biopsy, batch state, QC progress,
    release, doses and plan, and `ready` with the reason when not (CLN-1). Paged: `X-Total-Count`
    and a `Link` header to the next and previous pages."""
    page = board.readiness(session, settings, limit=limit, offset=offset)
    response.headers.update(page.headers(request.url))
    return page.rows


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
