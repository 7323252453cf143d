"""The catalogue page: materials, their lots and the equipment (SEC-5). QA sets each lot's QC
status and each piece of equipment's calibration and qualification due dates; whoever manages
the catalogue (issue 12 item 7) creates materials, lots and equipment and puts equipment in or
out of service. Each form builds the JSON API's own request schema and calls the service the API
calls (app/materials/api.py); a refusal is shown on the page, read afresh beside it, and changes
nothing (app/pageflow.py)."""

from datetime import datetime
from functools import partial
from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app import pageflow
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.clock import utcnow
from app.config import Settings, SettingsDep
from app.errors import HomewardError
from app.materials import service
from app.materials.schemas import (
    EquipmentCreate,
    EquipmentDueDates,
    EquipmentKind,
    EquipmentService,
    LotCreate,
    LotStatusSet,
    MaterialCategory,
    MaterialCreate,
)
from app.materials.states import LotStatus
from app.pipeline import Router, SessionDep
from app.qualifications.pages import end_of_day
from app.types import Id
from app.web import detached, form_model, refusals_shown_on, render_refusable

router = Router(include_in_schema=False)

REFUSED = "materials/refused.html"  # what is refused before the page can be read
Reader = Annotated[Principal, Depends(refusals_shown_on(REFUSED, Permission.CATALOGUE_READ))]
Manager = Annotated[Principal, Depends(refusals_shown_on(REFUSED, Permission.CATALOGUE_MANAGE))]
Disposer = Annotated[Principal, Depends(refusals_shown_on(REFUSED, Permission.LOT_DISPOSITION))]
Qualifier = Annotated[Principal, Depends(refusals_shown_on(REFUSED, Permission.EQUIPMENT_QUALIFY))]
Reason = Annotated[str, Form(max_length=4000)]
Day = Annotated[str, Form(max_length=10)]
Field = Annotated[str, Form(max_length=200)]

# The sentence shown after each act, by the `done` of the redirect (never text from the URL).
NOTICES = {
    "material": "Material created: its lots can now be received.",
    "lot": "Lot received in quarantine: QA releases it before any step can use it (SEC-5).",
    "equipment": "Equipment registered: it can be used once its calibration and qualification "
    "are on record.",
    "service": "Equipment service state changed.",
    "status": "Lot QC status changed.",
    "due_dates": "Due dates recorded.",
}


def _catalogue(session: Session, principal: Principal) -> dict:
    now = utcnow()
    return {
        "materials": [service.material_public(m) for m in service.list_materials(session)],
        "lots": [service.lot_public(lot, m, now) for lot, m in service.list_lots(session)],
        "equipment": [service.equipment_public(e, now) for e in service.list_equipment(session)],
        "principal": detached(principal),
    }


async def _show(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    refusal: HomewardError | None = None,
    typed: dict | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    shown = await pageflow.read(session, partial(_catalogue, session, principal))
    return render_refusable(
        request,
        "materials/index.html",
        refusal,
        notice=notice,
        typed=typed or {},
        statuses=list(LotStatus),
        categories=list(MaterialCategory),
        kinds=list(EquipmentKind),
        **shown,
    )


async def _act(
    request: Request, session: Session, principal: Principal, act, done: str, typed=None
) -> Response:
    """`act`; then the page with the act's notice (`done`), or with its refusal
    and what was typed."""
    return await pageflow.act_or_show(
        session,
        act,
        done=lambda _: RedirectResponse(f"/materials?done={done}", status_code=303),
        show=lambda refusal: _show(request, session, principal, refusal=refusal, typed=typed),
    )


def _day(settings: Settings, text: str) -> datetime | None:
    """A day typed on the page as the end of that day, local time (valid through it)."""
    return end_of_day(settings, text.strip()) if text.strip() else None


@router.get("/materials", response_class=HTMLResponse)
async def materials_page(
    request: Request, session: SessionDep, principal: Reader, done: str = ""
) -> Response:
    principal = await pageflow.signed_in(session, principal)
    return await _show(request, session, principal, notice=NOTICES.get(done))


@router.post("/materials/new", response_class=HTMLResponse)
async def create_material(
    request: Request,
    session: SessionDep,
    principal: Manager,
    code: Field = "",
    name: Field = "",
    category: Field = "",
) -> Response:
    """POST /api/v1/materials from a form."""
    principal = await pageflow.signed_in(session, principal)

    def act() -> object:
        data = form_model(MaterialCreate, code=code, name=name, category=category)
        return service.create_material(session, actor=principal.user, data=data)

    typed = {"material": {"code": code, "name": name, "category": category}}
    return await _act(request, session, principal, act, "material", typed)


@router.post("/materials/lots", response_class=HTMLResponse)
async def create_lot(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Manager,
    material_id: Field = "",
    lot_number: Field = "",
    supplier: Field = "",
    expires_at: Day = "",
) -> Response:
    """POST /api/v1/lots from a form: the lot expires at the end of the day typed."""
    principal = await pageflow.signed_in(session, principal)

    def act() -> object:
        data = form_model(
            LotCreate,
            material_id=material_id,
            lot_number=lot_number,
            supplier=supplier,
            expires_at=_day(settings, expires_at),
        )
        return service.create_lot(session, actor=principal.user, data=data)

    typed = {
        "lot": {
            "material_id": material_id,
            "lot_number": lot_number,
            "supplier": supplier,
            "expires_at": expires_at,
        }
    }
    return await _act(request, session, principal, act, "lot", typed)


@router.post("/materials/equipment", response_class=HTMLResponse)
async def create_equipment(
    request: Request,
    session: SessionDep,
    principal: Manager,
    code: Field = "",
    name: Field = "",
    kind: Field = "",
    in_service: Field = "false",  # a checkbox: sent only when ticked
) -> Response:
    """POST /api/v1/equipment from a form."""
    principal = await pageflow.signed_in(session, principal)

    def act() -> object:
        data = form_model(EquipmentCreate, code=code, name=name, kind=kind, in_service=in_service)
        return service.create_equipment(session, actor=principal.user, data=data)

    typed = {"equipment": {"code": code, "name": name, "kind": kind, "in_service": in_service}}
    return await _act(request, session, principal, act, "equipment", typed)


@router.post("/materials/equipment/{equipment_id}/service", response_class=HTMLResponse)
async def set_service(
    request: Request,
    session: SessionDep,
    principal: Manager,
    equipment_id: Id,
    in_service: Field = "",
) -> Response:
    """PUT /api/v1/equipment/{id}/service from a form: in or out of service."""
    principal = await pageflow.signed_in(session, principal)

    def act() -> object:
        data = form_model(EquipmentService, in_service=in_service)
        return service.set_in_service(
            session, actor=principal.user, equipment_id=equipment_id, in_service=data.in_service
        )

    return await _act(request, session, principal, act, "service")


@router.post("/materials/lots/{lot_id}/status", response_class=HTMLResponse)
async def lot_status(
    request: Request,
    session: SessionDep,
    principal: Disposer,
    lot_id: Id,
    status: Annotated[str, Form(max_length=16)] = "",
    reason: Reason = "",
) -> Response:
    """PUT /api/v1/lots/{id}/status from a form: QA's disposition, with the reason (SEC-5)."""
    principal = await pageflow.signed_in(session, principal)

    def act() -> object:
        data = form_model(LotStatusSet, status=status, reason=reason)
        return service.set_lot_status(session, actor=principal.user, lot_id=lot_id, data=data)

    return await _act(request, session, principal, act, "status")


@router.post("/materials/equipment/{equipment_id}/due-dates", response_class=HTMLResponse)
async def due_dates(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Qualifier,
    equipment_id: Id,
    reason: Reason = "",
    calibration_due_on: Day = "",
    qualification_due_on: Day = "",
) -> Response:
    """PUT /api/v1/equipment/{id}/due-dates from a form: each valid through the day typed."""
    principal = await pageflow.signed_in(session, principal)

    def act() -> object:
        data = form_model(
            EquipmentDueDates,
            calibration_due_at=_day(settings, calibration_due_on),
            qualification_due_at=_day(settings, qualification_due_on),
            reason=reason,
        )
        return service.set_due_dates(
            session, actor=principal.user, equipment_id=equipment_id, data=data
        )

    return await _act(request, session, principal, act, "due_dates")
