"""Biopsy pages (issue 12 item 1): a clinician registers a biopsy from the patient's page and
prints its tube label; a technician receives it by scanning the tube and registers its batch;
QA voids a wrong registration. Each calls the service the JSON API calls, with the API's own
request schema; a refusal is shown on the page that asked, beside what it shows."""

from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app import pageflow
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches import service as batches
from app.batches.schemas import BatchCreate
from app.biopsies import service
from app.biopsies.schemas import BiopsyCreate, BiopsyReceipt, BiopsyStatus
from app.clock import utcnow
from app.errors import HomewardError, NotAuthenticated
from app.labels import service as labels
from app.labels.schemas import VesselPrintRequest
from app.patients import service as patients
from app.patients.pages import Field, Text, show_patient
from app.patients.schemas import VoidRequest
from app.pipeline import Router, SessionDep
from app.types import Id
from app.web import (
    form_model,
    local_input,
    page_require,
    parse_local_datetime,
    render_refusable,
    typed_number,
)

router = Router(include_in_schema=False)

Reader = Annotated[Principal, Depends(page_require(Permission.BATCH_READ))]
Registrar = Annotated[Principal, Depends(page_require(Permission.BIOPSY_REGISTER))]
Receiver = Annotated[Principal, Depends(page_require(Permission.BIOPSY_RECEIVE))]
BatchRegistrar = Annotated[Principal, Depends(page_require(Permission.BATCH_REGISTER))]
Voider = Annotated[Principal, Depends(page_require(Permission.BIOPSY_VOID))]
Printer = Annotated[Principal, Depends(page_require(Permission.LABEL_PRINT))]

# The badge of each biopsy state: a tone (a colour, always with the words) and its meaning.
BADGES: dict[BiopsyStatus, tuple[str, str]] = {
    BiopsyStatus.COLLECTED: ("waiting", "Collected — not yet received at the lab"),
    BiopsyStatus.RECEIVED: ("good", "Received and accepted at the lab"),
    BiopsyStatus.REJECTED: ("bad", "Rejected at receipt — not for processing"),
    BiopsyStatus.VOIDED: ("ended", "Voided registration"),
}

# What the biopsy's page says first, and the tone of that panel (words first, colour second).
HEADLINES: dict[BiopsyStatus, tuple[str, str]] = {
    BiopsyStatus.COLLECTED: ("ok", "REGISTERED"),
    BiopsyStatus.RECEIVED: ("ok", "RECEIVED"),
    BiopsyStatus.REJECTED: ("bad", "REJECTED AT RECEIPT"),
    BiopsyStatus.VOIDED: ("bad", "VOIDED"),
}

# The receipt form's choice, as the API's boolean.
DECISIONS = {"accept": True, "reject": False}


def _found(session: Session, biopsy_id: int) -> dict[str, Any]:
    biopsy, patient, tube = service.get(session, biopsy_id)
    shown = service.public(biopsy, tube)
    return {
        "biopsy": shown,
        "patient": patients.public(patient),
        "badge": BADGES[shown.status],
        "headline": HEADLINES[shown.status],
        "tube_id": tube.id,
    }


def _biopsy_page(session: Session, biopsy_id: int) -> dict[str, Any]:
    found = _found(session, biopsy_id)
    batch = next(
        (
            batches.summary(c)
            for c in batches.find(session, patient_id=found["patient"].id)
            if c.biopsy.id == biopsy_id
        ),
        None,
    )
    return found | {
        "batch": batch,
        "printers": labels.printers(session),
        "prints": labels.history(session, vessel_ids=[found["tube_id"]]),
    }


async def _show_biopsy(
    request: Request,
    session: Session,
    principal: Principal,
    biopsy_id: int,
    *,
    refusal: HomewardError | None = None,
    printed: labels.Printed | None = None,
    typed: dict[str, str] | None = None,
) -> HTMLResponse:
    shown = await pageflow.read(session, partial(_biopsy_page, session, biopsy_id))
    return render_refusable(
        request,
        "biopsies/biopsy.html",
        refusal,
        principal=principal,
        printed=printed,
        typed=typed or {},
        **shown,
    )


async def _show_receipt(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    found: dict[str, Any] | None = None,
    scanned: str = "",
    refusal: HomewardError | None = None,
    typed: dict[str, str] | None = None,
) -> HTMLResponse:
    zone = request.app.state.settings.display_timezone
    return render_refusable(
        request,
        "biopsies/receive.html",
        refusal,
        principal=principal,
        scanned=scanned,
        typed=typed or {},
        now_input=local_input(utcnow(), zone),
        skew_minutes=int(request.app.state.settings.late_entry_skew.total_seconds() // 60),
        **(found or {}),
    )


@router.post("/patients/{patient_id}/biopsies", response_model=None)
async def register_biopsy(
    request: Request,
    patient_id: Id,
    session: SessionDep,
    principal: Registrar,
    collected_at: Field = "",
    site: Field = "",
    mass_mg: Field = "",
) -> Response:
    """Register a biopsy of the patient as POST /api/v1/biopsies does; then its page, with the
    tube code and the tube label to print."""
    principal = await pageflow.signed_in(session, principal)
    settings = request.app.state.settings

    def register() -> str:
        data = form_model(
            BiopsyCreate,
            patient_id=patient_id,
            collected_at=parse_local_datetime(collected_at, settings.display_timezone),
            site=site,
            mass_mg=typed_number(mass_mg, "mass"),
        )
        biopsy, _tube = service.register(session, settings, actor=principal.user, data=data)
        return f"/biopsies/{biopsy.id}"

    async def refused(refusal: HomewardError) -> Response:
        typed = {"collected_at": collected_at, "site": site, "mass_mg": mass_mg}
        return await show_patient(
            request, session, principal, patient_id, refusal=refusal, typed=typed
        )

    return await pageflow.act_then_go(session, register, refused)


@router.get("/biopsies/receive", response_class=HTMLResponse)
async def receive_scan(
    request: Request,
    session: SessionDep,
    principal: Receiver,
    scanned_code: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The receipt bench: scan the tube (a scanner types the code and Enter); the biopsy it
    names is shown with whose it is and the receipt form. A code that is not a biopsy tube's is
    refused here, the scan box focused again."""
    principal = await pageflow.signed_in(session, principal)
    code = scanned_code.strip()
    if not code:
        return await _show_receipt(request, session, principal)

    def lookup() -> dict[str, Any]:
        biopsy, _patient, _tube = service.scanned_tube(session, code)
        return _found(session, biopsy.id or 0)

    try:
        found = await pageflow.read(session, lookup)
    except NotAuthenticated:
        raise
    except HomewardError as refusal:
        return await _show_receipt(request, session, principal, scanned=code, refusal=refusal)
    return await _show_receipt(request, session, principal, found=found, scanned=code)


@router.post("/biopsies/{biopsy_id}/receipt", response_model=None)
async def receive(
    request: Request,
    biopsy_id: Id,
    session: SessionDep,
    principal: Receiver,
    scanned_code: Field = "",
    received_at: Field = "",
    temperature_c: Field = "",
    accepted: Field = "",
    note: Text = "",
    late_reason: Text = "",
) -> Response:
    """Record the receipt as POST /api/v1/biopsies/{id}/receipt does: the scanned tube is
    checked against the biopsy again by the service (a mismatch is a STOP, audited)."""
    principal = await pageflow.signed_in(session, principal)
    settings = request.app.state.settings
    typed = {
        "received_at": received_at,
        "temperature_c": temperature_c,
        "accepted": accepted,
        "note": note,
        "late_reason": late_reason,
    }

    def receipt() -> str:
        when = received_at.strip()
        data = form_model(
            BiopsyReceipt,
            scanned_code=scanned_code,
            received_at=parse_local_datetime(when, settings.display_timezone) if when else utcnow(),
            temperature_c=typed_number(temperature_c, "transport temperature"),
            accepted=DECISIONS.get(accepted),
            note=note.strip() or None,
            late_reason=late_reason.strip() or None,
        )
        service.receive(session, settings, actor=principal.user, biopsy_id=biopsy_id, data=data)
        return f"/biopsies/{biopsy_id}"

    async def refused(refusal: HomewardError) -> Response:
        found = await pageflow.read(session, partial(_found, session, biopsy_id))
        return await _show_receipt(
            request,
            session,
            principal,
            found=found,
            scanned=scanned_code,
            refusal=refusal,
            typed=typed,
        )

    return await pageflow.act_then_go(session, receipt, refused)


@router.get("/biopsies/{biopsy_id}", response_class=HTMLResponse)
async def biopsy_page(
    request: Request, biopsy_id: Id, session: SessionDep, principal: Reader
) -> Response:
    """One biopsy: DIN, tube code and its label, receipt, its batch, and what the reader's role
    may do next."""
    principal = await pageflow.signed_in(session, principal)
    return await _show_biopsy(request, session, principal, biopsy_id)


@router.post("/biopsies/{biopsy_id}/batch", response_model=None)
async def register_batch(
    request: Request, biopsy_id: Id, session: SessionDep, principal: BatchRegistrar
) -> Response:
    """Register the batch of a received biopsy as POST /api/v1/batches does; then its record."""
    principal = await pageflow.signed_in(session, principal)
    settings = request.app.state.settings

    def register() -> str:
        data = form_model(BatchCreate, biopsy_id=biopsy_id)
        context = batches.register(
            session, settings, actor=principal.user, biopsy_id=data.biopsy_id
        )
        return f"/batches/{context.batch.id}"

    async def refused(refusal: HomewardError) -> Response:
        return await _show_biopsy(request, session, principal, biopsy_id, refusal=refusal)

    return await pageflow.act_then_go(session, register, refused)


@router.post("/biopsies/{biopsy_id}/void", response_model=None)
async def void_biopsy(
    request: Request, biopsy_id: Id, session: SessionDep, principal: Voider, reason: Text = ""
) -> Response:
    """QA voids a wrong registration with its reason (COI-1), as POST /biopsies/{id}/void."""
    principal = await pageflow.signed_in(session, principal)

    def void() -> str:
        data = form_model(VoidRequest, reason=reason)
        service.void(session, actor=principal.user, biopsy_id=biopsy_id, reason=data.reason)
        return f"/biopsies/{biopsy_id}"

    async def refused(refusal: HomewardError) -> Response:
        return await _show_biopsy(
            request, session, principal, biopsy_id, refusal=refusal, typed={"void_reason": reason}
        )

    return await pageflow.act_then_go(session, void, refused)


@router.post("/biopsies/{biopsy_id}/print", response_model=None)
async def print_tube_label(
    request: Request,
    biopsy_id: Id,
    session: SessionDep,
    principal: Printer,
    printer_id: Field = "",
    reason: Text = "",
) -> Response:
    """Print the tube's label through the label service (logged; a reprint needs its reason,
    LBL-5): a PDF download, or ZPL sent to the chosen network printer. Never by itself."""
    principal = await pageflow.signed_in(session, principal)
    settings = request.app.state.settings

    def print_label() -> labels.Printed:
        _biopsy, _patient, tube = service.get(session, biopsy_id)
        device = int(printer_id) if printer_id.strip().isdigit() else None
        wanted = form_model(VesselPrintRequest, printer_id=device, reason=reason.strip() or None)
        return labels.print_vessel(
            session, settings, actor=principal.user, code=tube.code, request=wanted
        )

    printed = await pageflow.attempt(session, print_label)
    if isinstance(printed, HomewardError):
        typed = {"print_reason": reason}
        return await _show_biopsy(
            request, session, principal, biopsy_id, refusal=printed, typed=typed
        )
    if printed.job is None:
        document = printed.document
        return Response(
            document.body,
            media_type=document.media_type,
            headers={"Content-Disposition": f'attachment; filename="{document.filename}"'},
        )
    return await _show_biopsy(request, session, principal, biopsy_id, printed=printed)
