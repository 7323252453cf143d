"""QA's page of lots and equipment (SEC-5): each lot's QC status, each piece of equipment's
calibration and qualification due dates, and the forms to change them."""

from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from app.auth.permissions import Permission
from app.auth.service import Principal
from app.clock import utcnow
from app.config import SettingsDep
from app.errors import InvalidRequest
from app.materials import service
from app.materials.schemas import EquipmentDueDates, LotStatusSet
from app.materials.states import LotStatus
from app.pipeline import Router, SessionDep
from app.qualifications.pages import end_of_day
from app.web import page_require, render

router = Router(include_in_schema=False)

Reader = Annotated[Principal, Depends(page_require(Permission.CATALOGUE_READ))]
Disposer = Annotated[Principal, Depends(page_require(Permission.LOT_DISPOSITION))]
Qualifier = Annotated[Principal, Depends(page_require(Permission.EQUIPMENT_QUALIFY))]
Reason = Annotated[str, Form(max_length=4000)]
Day = Annotated[str, Form(max_length=10)]


def _form(build):
    try:
        return build()
    except ValidationError as exc:
        raise InvalidRequest(f"The form is not valid: {exc}.") from exc


@router.get("/materials", response_class=HTMLResponse)
def materials_page(request: Request, session: SessionDep, principal: Reader) -> HTMLResponse:
    now = utcnow()
    lots = [service.lot_public(lot, material, now) for lot, material in service.list_lots(session)]
    equipment = [service.equipment_public(e, now) for e in service.list_equipment(session)]
    return render(
        request,
        "materials/index.html",
        principal=principal,
        lots=lots,
        equipment=equipment,
        statuses=list(LotStatus),
    )


@router.post("/materials/lots/{lot_id}/status")
def lot_status(
    session: SessionDep,
    principal: Disposer,
    lot_id: int,
    status: Annotated[str, Form(max_length=16)],
    reason: Reason,
) -> RedirectResponse:
    data = _form(lambda: LotStatusSet(status=status, reason=reason))  # type: ignore[arg-type]
    service.set_lot_status(session, actor=principal.user, lot_id=lot_id, data=data)
    return RedirectResponse("/materials", status_code=303)


@router.post("/materials/equipment/{equipment_id}/due-dates")
def due_dates(
    session: SessionDep,
    settings: SettingsDep,
    principal: Qualifier,
    equipment_id: int,
    reason: Reason,
    calibration_due_on: Day = "",
    qualification_due_on: Day = "",
) -> RedirectResponse:
    def day(text: str):
        return end_of_day(settings, text) if text.strip() else None

    data = _form(
        lambda: EquipmentDueDates(
            calibration_due_at=day(calibration_due_on),
            qualification_due_at=day(qualification_due_on),
            reason=reason,
        )
    )
    service.set_due_dates(session, actor=principal.user, equipment_id=equipment_id, data=data)
    return RedirectResponse("/materials", status_code=303)
