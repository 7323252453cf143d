from typing import Annotated, Any

from fastapi import Depends, Query, Response

from app.audit.api import csv_response
from app.audit.schemas import AuditEventPublic
from app.auth.deps import PatientAuditReader, require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches import record, service
from app.batches.schemas import BatchCreate, BatchPublic, BatchSummary
from app.config import SettingsDep
from app.patients.schemas import VoidRequest
from app.pipeline import Router, SessionDep
from app.trace import service as trace
from app.types import Id

router = Router(tags=["batches"])

Registrar = Annotated[Principal, Depends(require(Permission.BATCH_REGISTER))]
Reader = Annotated[Principal, Depends(require(Permission.BATCH_READ))]
Destroyer = Annotated[Principal, Depends(require(Permission.BATCH_DESTROY))]


@router.post("/batches", response_model=BatchPublic, status_code=201)
def register_batch(
    body: BatchCreate, session: SessionDep, settings: SettingsDep, principal: Registrar
) -> BatchPublic:
    context = service.register(session, settings, actor=principal.user, biopsy_id=body.biopsy_id)
    return service.detail(session, context)


@router.get("/batches", response_model=list[BatchSummary])
def list_batches(
    session: SessionDep, _: Reader, patient_id: Annotated[Id | None, Query()] = None
) -> list[BatchSummary]:
    return [service.summary(context) for context in service.find(session, patient_id=patient_id)]


@router.get("/batches/{batch_id}", response_model=BatchPublic)
def get_batch(batch_id: Id, session: SessionDep, _: Reader) -> BatchPublic:
    return service.detail(session, service.get(session, batch_id))


@router.get("/batches/{batch_id}/audit", response_model=list[AuditEventPublic])
def batch_trail(batch_id: Id, session: SessionDep, _: PatientAuditReader) -> list[AuditEventPublic]:
    """The batch's timeline: every event about the batch, its biopsy and its vessels."""
    events = service.trail(session, service.get(session, batch_id))
    return [AuditEventPublic.from_event(event) for event in events]


@router.get("/batches/{batch_id}/audit.csv", response_class=Response)
def batch_trail_csv(batch_id: Id, session: SessionDep, _: PatientAuditReader) -> Response:
    context = service.get(session, batch_id)
    return csv_response(service.trail(session, context), f"audit-{context.batch.batch_number}.csv")


@router.post("/batches/{batch_id}/destroy", response_model=BatchPublic)
def destroy_batch(
    batch_id: Id, body: VoidRequest, session: SessionDep, principal: Destroyer
) -> BatchPublic:
    context = service.destroy(session, actor=principal.user, batch_id=batch_id, reason=body.reason)
    return service.detail(session, context)


@router.post("/batches/{batch_id}/hold", response_model=BatchPublic)
def hold_batch(
    batch_id: Id, body: VoidRequest, session: SessionDep, principal: Destroyer
) -> BatchPublic:
    """QA puts a batch on hold (DESIGN §4); deviations (issue 4) use the same service."""
    context = service.hold(session, actor=principal.user, batch_id=batch_id, reason=body.reason)
    return service.detail(session, context)


@router.post("/batches/{batch_id}/lift-hold", response_model=BatchPublic)
def lift_hold(
    batch_id: Id, body: VoidRequest, session: SessionDep, principal: Destroyer
) -> BatchPublic:
    context = service.lift_hold(
        session, actor=principal.user, batch_id=batch_id, reason=body.reason
    )
    return service.detail(session, context)


@router.get("/batches/{batch_id}/lineage")
def batch_lineage(batch_id: Id, session: SessionDep, _: Reader) -> dict[str, Any]:
    """The vessel tree with the step that made each vessel (COI-7)."""
    return trace.lineage(session, batch_id)


@router.get("/batches/{batch_id}/record")
def batch_record(
    batch_id: Id, session: SessionDep, settings: SettingsDep, _: Reader
) -> dict[str, Any]:
    """The electronic batch record (JSON); the page is /batches/{id}."""
    return record.batch_record(session, settings, batch_id)


@router.get("/batches/{batch_id}/record.pdf", response_class=Response)
def batch_record_pdf(
    batch_id: Id, session: SessionDep, settings: SettingsDep, _: Reader
) -> Response:
    """The electronic batch record as a PDF: corrections marked, identifiers whole (AUD-9)."""
    found = record.batch_record(session, settings, batch_id)
    name = f"batch-record-{found['batch']['batch_number']}.pdf"
    return Response(
        record.pdf(found),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )
