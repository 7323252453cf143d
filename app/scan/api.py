from typing import Annotated

from fastapi import Depends

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.pipeline import Router, SessionDep
from app.scan import service
from app.scan.schemas import ScanRequest, ScanResult

router = Router(tags=["scan"])

Scanner = Annotated[Principal, Depends(require(Permission.SCAN))]


@router.post("/scan", response_model=ScanResult)
def scan(
    body: ScanRequest, session: SessionDep, settings: SettingsDep, principal: Scanner
) -> ScanResult:
    return service.scan(
        session,
        actor=principal.user,
        code=body.code,
        expect=body.expect,
        record_accepted=settings.scan_audit,
    )
