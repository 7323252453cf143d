from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Response
from fastapi.responses import HTMLResponse

from app.audit import service as audit
from app.audit.api import csv_response
from app.audit.schemas import AuditEventPublic
from app.auth.deps import PatientAuditReader, require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.patients import service
from app.patients.schemas import MRN, PatientCreate, PatientPublic, VoidRequest
from app.pipeline import Router, SessionDep
from app.trace import report
from app.trace import service as trace
from app.types import Id
from app.websecurity import DOCUMENT_HEADERS

router = Router(tags=["patients"])

Registrar = Annotated[Principal, Depends(require(Permission.PATIENT_REGISTER))]
Reader = Annotated[Principal, Depends(require(Permission.PATIENT_READ))]
Voider = Annotated[Principal, Depends(require(Permission.PATIENT_VOID))]
Tracer = Annotated[Principal, Depends(require(Permission.TRACE_REPORT))]


@router.post("/patients", response_model=PatientPublic, status_code=201)
def register_patient(
    body: PatientCreate, session: SessionDep, settings: SettingsDep, principal: Registrar
) -> PatientPublic:
    return service.public(service.register(session, settings, actor=principal.user, data=body))


@router.get("/patients", response_model=list[PatientPublic])
def list_patients(
    session: SessionDep, _: Reader, mrn: Annotated[MRN | None, Query()] = None
) -> list[PatientPublic]:
    return [service.public(patient) for patient in service.find(session, mrn=mrn)]


@router.get("/patients/{patient_id}", response_model=PatientPublic)
def get_patient(patient_id: Id, session: SessionDep, _: Reader) -> PatientPublic:
    return service.public(service.get(session, patient_id))


@router.post("/patients/{patient_id}/void", response_model=PatientPublic)
def void_patient(
    patient_id: Id, body: VoidRequest, session: SessionDep, principal: Voider
) -> PatientPublic:
    return service.public(
        service.void(session, actor=principal.user, patient_id=patient_id, reason=body.reason)
    )


@router.get("/patients/{patient_id}/audit", response_model=list[AuditEventPublic])
def patient_trail(
    patient_id: Id, session: SessionDep, _: PatientAuditReader
) -> list[AuditEventPublic]:
    """The patient's whole chain of identity trail (their COI's audit chain), oldest first."""
    coi = service.get(session, patient_id).coi
    return [AuditEventPublic.from_event(e) for e in audit.events(session, scope=coi, limit=None)]


@router.get("/patients/{patient_id}/audit.csv", response_class=Response)
def patient_trail_csv(patient_id: Id, session: SessionDep, _: PatientAuditReader) -> Response:
    coi = service.get(session, patient_id).coi
    return csv_response(audit.events(session, scope=coi, limit=None), f"audit-{coi}.csv")


@router.get("/patients/{patient_id}/trace")
def patient_trace(patient_id: Id, session: SessionDep, _: Reader) -> dict[str, Any]:
    """The patient forward to every biopsy, batch, vessel and dose (COI-7)."""
    return trace.patient_trace(session, patient_id)


@router.get("/patients/{patient_id}/trace-report", response_class=Response)
def trace_report(
    patient_id: Id,
    session: SessionDep,
    _: Tracer,
    format: Annotated[Literal["html", "pdf"], Query()] = "html",
) -> Response:
    """From biopsy to every infusion and back (COI-7, 21 CFR 1271.290), as HTML or PDF."""
    service.get(session, patient_id)
    found = report.build(session, patient_id)
    if format == "pdf":
        return Response(
            report.pdf(found),
            media_type="application/pdf",
            headers={"Content-Disposition": 'inline; filename="trace-report.pdf"'},
        )
    return HTMLResponse(report.html(found), headers=DOCUMENT_HEADERS)
