from typing import Annotated

from fastapi import Depends, Query

from app.auth.deps import AuditReader, require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.pipeline import Router, SessionDep
from app.validation import service
from app.validation.schemas import Sha256, ValidationReportPublic, ValidationReportSign

router = Router(tags=["validation"])

ReportSigner = Annotated[Principal, Depends(require(Permission.VALIDATION_SIGN))]


@router.post("/validation-reports", response_model=ValidationReportPublic, status_code=201)
def sign_report(
    body: ValidationReportSign, session: SessionDep, settings: SettingsDep, principal: ReportSigner
) -> ValidationReportPublic:
    """QA e-signs an operational-qualification report (`homeward validate`) by its SHA-256."""
    return service.sign(session, settings, actor=principal.user, data=body)


@router.get("/validation-reports", response_model=list[ValidationReportPublic])
def list_reports(
    session: SessionDep, _: AuditReader, sha256: Annotated[Sha256 | None, Query()] = None
) -> list[ValidationReportPublic]:
    """The signed reports, newest first; `?sha256=` those of one report."""
    return service.signed(session, sha256)
