from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlmodel import Session

from app.auth.deps import bearer, request_token, require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep, settings_of
from app.pipeline import DirectRoute, Router, SessionDep, json_body
from app.scan import service
from app.scan.schemas import ScanRequest, ScanResult

router = Router(tags=["scan"])

scanner = require(Permission.SCAN)
Scanner = Annotated[Principal, Depends(scanner)]


async def _arguments(request: Request, session: Session) -> dict[str, Any]:
    """The scan's parameters, from the dependencies FastAPI would solve, in the same order: the
    token (401) before the body (422, after the principal is settled: 401/403 first)."""
    settings = await settings_of(request)
    token = await request_token(request, await bearer(request))
    return {
        "principal": await scanner(session, settings, token),
        "body": await json_body(request, ScanRequest),
        "session": session,
        "settings": settings,
    }


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


router.add_api_route(
    "/scan",
    scan,
    methods=["POST"],
    response_model=ScanResult,
    route_class_override=partial(DirectRoute, arguments=_arguments),
)
