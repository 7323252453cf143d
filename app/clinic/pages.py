"""The clinic's pages: the readiness board, a patient's page (trace report, infusion plan,
rescheduling), dose receipt by scanning, and the bedside check with the witnessed infusion.
Each calls the service the JSON API calls; refusals are shown on the page that asked."""

from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from app.auth import service as auth
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches import service as batches
from app.clinic import board, service
from app.clinic.birthdates import HINTS, parse_birth_date
from app.clinic.schemas import (
    PAGE_SIZE,
    BedsideCheck,
    InfusionCreate,
    PageLimit,
    PageOffset,
    PlanCreate,
    Reschedule,
)
from app.clock import utcnow
from app.config import Settings, SettingsDep
from app.patients import service as patients
from app.pipeline import Router, SessionDep
from app.release import service as release
from app.release.schemas import PhysicianAcceptanceCreate
from app.storage import service as storage
from app.storage.schemas import CustodyCreate, CustodyKind
from app.trace import service as trace
from app.types import Id
from app.web import (
    form_model,
    page_require,
    parse_local_datetime,
    refusals_shown_on,
    render,
    templates,
    typed_number,
)

router = Router(include_in_schema=False)
# The bedside form says how it reads a typed birth date (the setting), on every render.
templates.env.globals["birth_date_hints"] = HINTS

Board = Annotated[Principal, Depends(page_require(Permission.CLINIC_BOARD))]
Planner = Annotated[
    Principal, Depends(refusals_shown_on("clinic/refused.html", Permission.INFUSION_PLAN))
]
Physician = Annotated[
    Principal,
    Depends(refusals_shown_on("clinic/refused.html", Permission.PHYSICIAN_ACCEPTANCE)),
]
Receiver = Annotated[
    Principal, Depends(refusals_shown_on("clinic/receive.html", Permission.CUSTODY_RECEIVE))
]
Infuser = Annotated[
    Principal, Depends(refusals_shown_on("clinic/bedside.html", Permission.INFUSION_RECORD))
]

Field = Annotated[str, Form(max_length=256)]
Text = Annotated[str, Form(max_length=4000)]


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


@router.get("/clinic/patients/{patient_id}", response_class=HTMLResponse)
def patient_page(
    request: Request, patient_id: Id, session: SessionDep, principal: Board
) -> HTMLResponse:
    """One patient: identity, trace report, each batch's doses and infusion plan."""
    patient = patients.public(patients.get(session, patient_id))
    contexts = batches.find(session, patient_id=patient_id)
    batch_ids = [c.batch.id or 0 for c in contexts]
    plans = service.planned_public(session, service.planned(session, batch_ids))
    return render(
        request,
        "clinic/patient.html",
        principal=principal,
        patient=patient,
        batches=[batches.summary(c) for c in contexts],
        plans=plans,
        doses=trace.patient_trace(session, patient_id)["doses"],
        acceptances={b: release.acceptances(session, b) for b in batch_ids},
        # Each act offered only where its service would take it (issue 12 item 4).
        plannable={c.batch.id for c in contexts if service.plan_refusal(session, c) is None},
        acceptable={c.batch.id for c in contexts if release.acceptance_refusal(session, c) is None},
    )


@router.post("/clinic/batches/{batch_id}/plan")
def plan(
    batch_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    principal: Planner,
    first_infusion_at: Field,
) -> RedirectResponse:
    """Plan the batch's doses from the protocol (CLN-2), from a local date and time."""
    first = parse_local_datetime(first_infusion_at, settings.display_timezone)
    data = form_model(PlanCreate, first_infusion_at=first)
    service.plan(session, settings, actor=principal.user, batch_id=batch_id, data=data)
    patient_id = batches.get(session, batch_id).patient.id
    return RedirectResponse(f"/clinic/patients/{patient_id}", status_code=303)


@router.post("/clinic/planned/{planned_id}/reschedule")
def reschedule(
    planned_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    principal: Planner,
    planned_at: Field,
    reason: Text = "",
) -> RedirectResponse:
    """Move one planned infusion, with a reason (audited, old and new dates)."""
    moved = parse_local_datetime(planned_at, settings.display_timezone)
    data = form_model(Reschedule, planned_at=moved, reason=reason.strip() or None)
    row = service.reschedule(session, actor=principal.user, planned_id=planned_id, data=data)
    patient_id = batches.get(session, row.batch_id).patient.id
    return RedirectResponse(f"/clinic/patients/{patient_id}", status_code=303)


@router.post("/clinic/batches/{batch_id}/physician-acceptance")
def physician_acceptance(
    batch_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    principal: Physician,
    physician_name: Field,
    password: Field,
    note: Text = "",
) -> RedirectResponse:
    """The treating physician's acceptance of a conditionally released or out-of-specification
    batch, e-signed by the clinician with the meaning `approved` (SIG-6), as of now."""
    data = form_model(
        PhysicianAcceptanceCreate,
        physician_name=physician_name.strip(),
        accepted_at=utcnow(),
        note=note.strip() or None,
        password=password,
    )
    release.record_acceptance(session, settings, actor=principal.user, batch_id=batch_id, data=data)
    patient_id = batches.get(session, batch_id).patient.id
    return RedirectResponse(f"/clinic/patients/{patient_id}", status_code=303)


@router.get("/clinic/receive", response_class=HTMLResponse)
def receive_form(request: Request, principal: Receiver) -> HTMLResponse:
    return render(request, "clinic/receive.html", principal=principal)


@router.post("/clinic/receive", response_class=HTMLResponse)
def receive(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Receiver,
    dose_code: Field,
    location: Field,
    temperature_c: Annotated[str, Form(max_length=20)] = "",
) -> HTMLResponse:
    """A dose received at the clinic by scanning its label: a custody event with temperature
    (CLN-3), through the service the API's custody call uses."""
    data = form_model(
        CustodyCreate,
        event=CustodyKind.RECEIVED,
        location=location.strip(),
        temperature_c=typed_number(temperature_c, "temperature"),
    )
    event = storage.record_custody(
        session, settings, principal=principal, code=dose_code, data=data
    )
    return render(
        request,
        "clinic/receive.html",
        principal=principal,
        received=event,
        dose=trace.vessel_trace(session, dose_code),
    )


@router.get("/bedside", response_class=HTMLResponse)
def bedside_form(request: Request, principal: Infuser) -> HTMLResponse:
    return render(request, "clinic/bedside.html", principal=principal)


def _check(settings: Settings, wristband_mrn: str, birth_date: str, dose_code: str) -> BedsideCheck:
    born = parse_birth_date(birth_date, order=settings.birth_date_order)
    return form_model(
        BedsideCheck, wristband_mrn=wristband_mrn, birth_date=born, dose_code=dose_code
    )


@router.post("/bedside/verify", response_class=HTMLResponse)
def bedside_verify(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Infuser,
    wristband_mrn: Field,
    birth_date: Field,
    dose_code: Field,
) -> HTMLResponse:
    """Step 1 at the bedside: every check of the API; confirmed, the patient's name and birth
    date are shown to compare with the person; a refusal is shown on this page (a STOP panel
    for the wrong patient)."""
    data = _check(settings, wristband_mrn, birth_date, dose_code)
    checked = service.verify(session, actor=principal.user, data=data)
    return render(
        request,
        "clinic/bedside.html",
        principal=principal,
        checked=checked,
        patient=patients.public(patients.get(session, checked.patient_id)),
        form=data,
    )


@router.post("/bedside/infuse", response_class=HTMLResponse)
def bedside_infuse(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Infuser,
    wristband_mrn: Field,
    birth_date: Field,
    dose_code: Field,
    witness_username: Field,
    witness_password: Field,
    volume_ml: Annotated[str, Form(max_length=20)] = "",
    observations: Text = "",
    adverse_reactions: Text = "",
) -> HTMLResponse:
    """Step 2: the same checks again with the witness's password; the infusion is recorded."""
    check = _check(settings, wristband_mrn, birth_date, dose_code)
    data = form_model(
        InfusionCreate,
        **check.model_dump(),
        administered_at=utcnow(),
        witness_username=witness_username,
        witness_password=witness_password,
        volume_ml=typed_number(volume_ml, "volume"),
        observations=observations.strip() or None,
        adverse_reactions=adverse_reactions.strip() or None,
    )
    infusion = service.infuse(session, settings, actor=principal.user, data=data)
    done = service.infusion_public(session, infusion)
    return render(
        request,
        "clinic/bedside.html",
        principal=principal,
        done=done,
        people=auth.people(session, usernames=[done.administered_by, done.witness]),
        patient=patients.public(patients.get(session, done.patient_id)),
    )
