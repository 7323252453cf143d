"""QC result entry for one batch (issue 12 item 1): every test of the batch's specification with
its limit, its result in force and that result's outcome in words, and one form that enters a
result, or a correction with its reason, through `qc.service.enter` (the API's own service, the
request built with the API's `QcResultCreate`).

A refusal never replaces the page: the act runs in its own unit of work and the page is read
afresh in another (`app.pageflow`, ADR 0026), with what was typed kept in the form."""

from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app import pageflow
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches import service as batches
from app.config import Settings
from app.errors import HomewardError, InvalidRequest
from app.pipeline import Router, SessionDep
from app.qc import service
from app.qc.schemas import QcResultCreate, QcResultPublic
from app.scan.views import identity_of
from app.types import Id
from app.web import form_model, page_require, render_refusable

router = Router(include_in_schema=False)

Reader = Annotated[Principal, Depends(page_require(Permission.BATCH_READ))]
Analyst = Annotated[Principal, Depends(page_require(Permission.QC_ENTER))]
Field = Annotated[str, Form(max_length=256)]
Text = Annotated[str, Form(max_length=4000)]


@dataclass
class Entry:
    """The entry form as typed, shown again after a refusal (nothing here is judged)."""

    test: str = ""
    value: str = ""
    unit: str = ""
    sample_code: str = ""
    note: str = ""
    corrects: str = ""
    reason: str = ""

    def request(self) -> QcResultCreate:
        """The API's request for this form: blanks are fields not given."""
        if not self.value.strip():  # else the schema's first complaint names a union member
            raise InvalidRequest("Type the result: a number, or the answer of the test.")
        return form_model(
            QcResultCreate,
            test=self.test,
            value=self.value.strip(),
            unit=self.unit,
            sample_code=self.sample_code.strip() or None,
            corrects=self.corrects.strip() or None,
            reason=self.reason.strip() or None,
            note=self.note.strip() or None,
        )


def _page(session: Session, settings: Settings, batch_id: int) -> dict[str, Any]:
    """What the page shows (read only): the batch's identity and its QC as the API gives it."""
    qc = service.qc_public(session, settings, batch_id)
    return {
        "context": identity_of(batches.get(session, batch_id)),
        "qc": qc,
        "results": {r.id: r for r in qc.history},
    }


async def _show(
    request: Request,
    session: Session,
    principal: Principal,
    batch_id: int,
    entry: Entry,
    *,
    entered: QcResultPublic | None = None,
    refusal: HomewardError | None = None,
) -> HTMLResponse:
    settings = request.app.state.settings
    shown = await pageflow.read(session, partial(_page, session, settings, batch_id))
    return render_refusable(
        request,
        "qc/batch.html",
        refusal,
        principal=principal,
        entry=entry,
        entered=entered,
        **shown,
    )


@router.get("/batches/{batch_id}/qc", response_class=HTMLResponse)
async def qc_page(
    request: Request,
    batch_id: Id,
    session: SessionDep,
    principal: Reader,
    test: str = "",
    correct: str = "",
) -> Response:
    """The batch's tests and results; `test` chooses the test of the form and `correct` the
    result in force that the entry corrects (it then asks for a reason)."""
    principal = await pageflow.signed_in(session, principal)
    entry = Entry(test=test[:40], corrects=correct[:12] if correct.isdigit() else "")
    return await _show(request, session, principal, batch_id, entry)


@router.post("/batches/{batch_id}/qc", response_class=HTMLResponse)
async def enter_result(
    request: Request,
    batch_id: Id,
    session: SessionDep,
    principal: Analyst,
    test: Field = "",
    value: Field = "",
    unit: Field = "",
    sample_code: Field = "",
    note: Text = "",
    corrects: Field = "",
    reason: Text = "",
) -> Response:
    """One result (or a correction) entered as `POST /batches/{id}/qc-results` enters it."""
    principal = await pageflow.signed_in(session, principal)
    settings = request.app.state.settings
    entry = Entry(test, value, unit, sample_code, note, corrects, reason)

    def enter() -> QcResultPublic:
        result = service.enter(
            session, settings, actor=principal.user, batch_id=batch_id, data=entry.request()
        )
        return service.result_public(session, settings, result)

    done = await pageflow.attempt(session, enter)
    if isinstance(done, HomewardError):
        return await _show(request, session, principal, batch_id, entry, refusal=done)
    return await _show(request, session, principal, batch_id, Entry(), entered=done)
