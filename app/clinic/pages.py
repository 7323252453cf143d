"""The clinic's pages: the readiness board and the bedside check with the infusion record."""

from datetime import date
from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from app.auth.permissions import Permission
from app.auth.service import Principal
from app.clinic import board, service
from app.clinic.schemas import PAGE_SIZE, BedsideCheck, InfusionCreate, PageLimit, PageOffset
from app.clock import utcnow
from app.config import SettingsDep
from app.errors import InvalidRequest
from app.pipeline import Router, SessionDep
from app.types import CodeInput
from app.web import page_require, render

router = Router(include_in_schema=False)

Board = Annotated[Principal, Depends(page_require(Permission.CLINIC_BOARD))]
Infuser = Annotated[Principal, Depends(page_require(Permission.INFUSION_RECORD))]

Field = Annotated[str, Form(max_length=256)]


@router.get("/clinic", response_class=HTMLResponse)
def readiness(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Board,
    limit: PageLimit = PAGE_SIZE,
    offset: PageOffset = 0,
) -> HTMLResponse:
    """The board, a page at a time, with links to the next and previous pages."""
    page = board.readiness(session, settings, limit=limit, offset=offset)
    return render(request, "clinic/board.html", principal=principal, page=page)


@router.get("/bedside", response_class=HTMLResponse)
def bedside_form(request: Request, principal: Infuser) -> HTMLResponse:
    return render(request, "clinic/bedside.html", principal=principal, checked=None, done=None)


def _check(wristband_mrn: str, birth_date: str, dose_code: str) -> BedsideCheck:
    try:
        born = date.fromisoformat(birth_date)
        return BedsideCheck(wristband_mrn=wristband_mrn, birth_date=born, dose_code=dose_code)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise InvalidRequest(f"The form is not valid: {exc}.") from exc


@router.post("/bedside/verify", response_class=HTMLResponse)
def bedside_verify(
    request: Request,
    session: SessionDep,
    principal: Infuser,
    wristband_mrn: Field,
    birth_date: Field,
    dose_code: Annotated[CodeInput, Form()],
) -> HTMLResponse:
    """Step 1 at the bedside: the checks alone; a refusal is a red page with its reason."""
    data = _check(wristband_mrn, birth_date, dose_code)
    checked = service.verify(session, actor=principal.user, data=data)
    return render(
        request, "clinic/bedside.html", principal=principal, checked=checked, form=data, done=None
    )


@router.post("/bedside/infuse", response_class=HTMLResponse)
def bedside_infuse(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Infuser,
    wristband_mrn: Field,
    birth_date: Field,
    dose_code: Annotated[CodeInput, Form()],
    witness_username: Field,
    witness_password: Field,
    volume_ml: Annotated[str, Form(max_length=20)] = "",
    observations: Annotated[str, Form(max_length=4000)] = "",
) -> HTMLResponse:
    """Step 2: the same checks again with the witness's password; the infusion is recorded."""
    check = _check(wristband_mrn, birth_date, dose_code)
    try:
        data = InfusionCreate(
            **check.model_dump(),
            administered_at=utcnow(),
            witness_username=witness_username,
            witness_password=witness_password,
            volume_ml=float(volume_ml) if volume_ml.strip() else None,
            observations=observations.strip() or None,
        )
    except (ValidationError, ValueError) as exc:
        raise InvalidRequest(f"The form is not valid: {exc}.") from exc
    infusion = service.infuse(session, settings, actor=principal.user, data=data)
    done = service.infusion_public(session, infusion)
    return render(request, "clinic/bedside.html", principal=principal, checked=None, done=done)
