from typing import Annotated

from fastapi import Depends

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.pipeline import Router, SessionDep
from app.qc import service
from app.qc.schemas import QcPublic, QcResultCreate, QcResultPublic
from app.signatures.schemas import SignatureInput
from app.types import Id

router = Router(tags=["quality control"])

Reader = Annotated[Principal, Depends(require(Permission.BATCH_READ))]
Analyst = Annotated[Principal, Depends(require(Permission.QC_ENTER))]
Reviewer = Annotated[Principal, Depends(require(Permission.QC_REVIEW))]


@router.get("/batches/{batch_id}/qc", response_model=QcPublic)
def batch_qc(batch_id: Id, session: SessionDep, settings: SettingsDep, _: Reader) -> QcPublic:
    """Every test of the batch's specification with its current result (QC-2)."""
    return service.qc_public(session, settings, batch_id)


@router.post("/batches/{batch_id}/qc-results", response_model=QcResultPublic, status_code=201)
def enter_result(
    batch_id: Id, body: QcResultCreate, session: SessionDep, settings: SettingsDep, p: Analyst
) -> QcResultPublic:
    result = service.enter(session, settings, actor=p.user, batch_id=batch_id, data=body)
    return service.result_public(session, settings, result)


@router.post("/qc-results/{result_id}/review", response_model=QcResultPublic)
def review_result(
    result_id: Id, body: SignatureInput, session: SessionDep, settings: SettingsDep, p: Reviewer
) -> QcResultPublic:
    """A second person's e-signed review of a result (Annex 11 §6); never its author."""
    result = service.review(session, settings, actor=p.user, result_id=result_id, data=body)
    return service.result_public(session, settings, result)
