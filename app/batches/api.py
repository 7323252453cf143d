from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from app.audit.api import csv_response
from app.audit.schemas import AuditEventPublic
from app.auth.deps import PatientAuditReader, require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches import service
from app.batches.schemas import BatchCreate, BatchPublic, BatchSummary
from app.config import SettingsDep
from app.db import SessionDep
from app.types import Id

router = APIRouter(tags=["batches"])

Registrar = Annotated[Principal, Depends(require(Permission.BATCH_REGISTER))]
Reader = Annotated[Principal, Depends(require(Permission.BATCH_READ))]


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
