"""Patient pages (issue 12 item 1): find a patient by MRN or name, register one (birth dates as
nurses type them), the patient's page with their COI and biopsies, and QA's void of a wrong
registration. Each calls the service the JSON API calls, with the API's own request schema;
a refusal is shown on the page that asked, beside what it shows (app/pageflow.py)."""

from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app import pageflow
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.biopsies import service as biopsies
from app.clinic.birthdates import HINTS, parse_birth_date
from app.clock import utcnow
from app.errors import HomewardError
from app.patients import service
from app.patients.schemas import PatientCreate, Sex, VoidRequest
from app.pipeline import Router, SessionDep
from app.types import Id
from app.web import form_model, local_input, page_require, render, render_refusable

router = Router(include_in_schema=False)

Reader = Annotated[Principal, Depends(page_require(Permission.PATIENT_READ))]
Registrar = Annotated[Principal, Depends(page_require(Permission.PATIENT_REGISTER))]
Voider = Annotated[Principal, Depends(page_require(Permission.PATIENT_VOID))]

# A page form's fields: bounded, and empty rather than missing, so that the API's schema
# (form_model) is the one that says what is wrong, in words, on the page.
Field = Annotated[str, Form(max_length=256)]
Text = Annotated[str, Form(max_length=4000)]


def _patient_page(session: Session, patient_id: int) -> dict[str, Any]:
    patient = service.get(session, patient_id)
    return {
        "patient": service.public(patient),
        "biopsies": [biopsies.public(b, t) for b, t in biopsies.of_patient(session, patient_id)],
    }


async def show_patient(
    request: Request,
    session: Session,
    principal: Principal,
    patient_id: int,
    *,
    refusal: HomewardError | None = None,
    typed: dict[str, str] | None = None,
) -> HTMLResponse:
    """The patient's page, read afresh; with a refusal (and what was typed) when an act sent
    from it was refused."""
    shown = await pageflow.read(session, partial(_patient_page, session, patient_id))
    zone = request.app.state.settings.display_timezone
    return render_refusable(
        request,
        "patients/patient.html",
        refusal,
        principal=principal,
        typed=typed or {},
        now_input=local_input(utcnow(), zone),
        **shown,
    )


@router.get("/patients", response_class=HTMLResponse)
def patient_list(
    request: Request,
    session: SessionDep,
    principal: Reader,
    q: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    """Patients by MRN or name (newest first), or the newest ones when nothing is typed."""
    found = [service.public(p) for p in service.search(session, q)]
    return render(request, "patients/list.html", principal=principal, patients=found, q=q)


def _new_form(request: Request, principal: Principal, **context: Any) -> HTMLResponse:
    order = request.app.state.settings.birth_date_order
    return render(
        request,
        "patients/new.html",
        principal=principal,
        sexes=list(Sex),
        birth_date_hint=HINTS[order],
        **context,
    )


@router.get("/patients/new", response_class=HTMLResponse)
def new_patient(request: Request, principal: Registrar) -> HTMLResponse:
    return _new_form(request, principal, typed={})


@router.post("/patients", response_model=None)
async def register_patient(
    request: Request,
    session: SessionDep,
    principal: Registrar,
    mrn: Field = "",
    family_name: Field = "",
    given_name: Field = "",
    birth_date: Field = "",
    sex: Field = "",
) -> Response:
    """Register a patient as POST /api/v1/patients does; then the patient's page, COI first."""
    principal = await pageflow.signed_in(session, principal)
    settings = request.app.state.settings
    typed = {
        "mrn": mrn,
        "family_name": family_name,
        "given_name": given_name,
        "birth_date": birth_date,
        "sex": sex,
    }

    def register() -> str:
        born = parse_birth_date(birth_date, order=settings.birth_date_order)
        data = form_model(PatientCreate, **typed | {"birth_date": born, "sex": sex or None})
        patient = service.register(session, settings, actor=principal.user, data=data)
        return f"/patients/{patient.id}"

    async def refused(refusal: HomewardError) -> Response:
        response = _new_form(request, principal, typed=typed, error=refusal)
        response.status_code = refusal.status
        return response

    return await pageflow.act_then_go(session, register, refused)


@router.get("/patients/{patient_id}", response_class=HTMLResponse)
async def patient_page(
    request: Request, patient_id: Id, session: SessionDep, principal: Reader
) -> Response:
    """One patient: registration and COI, their biopsies, and what the reader's role may do."""
    principal = await pageflow.signed_in(session, principal)
    return await show_patient(request, session, principal, patient_id)


@router.post("/patients/{patient_id}/void", response_model=None)
async def void_patient(
    request: Request, patient_id: Id, session: SessionDep, principal: Voider, reason: Text = ""
) -> Response:
    """QA voids a wrong registration with its reason (COI-1), as POST /patients/{id}/void."""
    principal = await pageflow.signed_in(session, principal)

    def void() -> str:
        data = form_model(VoidRequest, reason=reason)
        service.void(session, actor=principal.user, patient_id=patient_id, reason=data.reason)
        return f"/patients/{patient_id}"

    async def refused(refusal: HomewardError) -> Response:
        return await show_patient(
            request, session, principal, patient_id, refusal=refusal, typed={"void_reason": reason}
        )

    return await pageflow.act_then_go(session, void, refused)
