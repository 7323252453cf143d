"""The scan station: scan a label, optionally against what the technician expects it to be."""

from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse

from app.auth.permissions import Permission
from app.auth.service import Principal
from app.pipeline import Router, SessionDep
from app.scan import service
from app.scan.schemas import ScanExpectation
from app.types import CodeInput, Id
from app.web import page_require, render

router = Router(include_in_schema=False)

Scanner = Annotated[Principal, Depends(page_require(Permission.SCAN))]


@router.get("/scan", response_class=HTMLResponse)
def scan_station(request: Request, principal: Scanner) -> HTMLResponse:
    return render(request, "scan/station.html", principal=principal, result=None)


@router.post("/scan", response_class=HTMLResponse)
def scan_submit(
    request: Request,
    session: SessionDep,
    principal: Scanner,
    code: Annotated[CodeInput, Form()],
    expect_batch_id: Annotated[Id | None, Form()] = None,
    expect_din: Annotated[CodeInput | None, Form()] = None,
) -> HTMLResponse:
    expect = ScanExpectation(batch_id=expect_batch_id, din=expect_din)
    result = service.scan(session, actor=principal.user, code=code, expect=expect)
    return render(request, "scan/station.html", principal=principal, result=result)
