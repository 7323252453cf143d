"""QA's pages: the queue, and the e-signed release decision taken from the batch record."""

from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.errors import InvalidRequest
from app.pipeline import Router, SessionDep
from app.release import service
from app.release.queue import qa_queue
from app.release.schemas import Decision, ReleaseCreate
from app.signatures.schemas import Password
from app.types import Id, LongText
from app.web import page_require, render

router = Router(include_in_schema=False)

Releaser = Annotated[Principal, Depends(page_require(Permission.BATCH_RELEASE))]


@router.get("/qa", response_class=HTMLResponse)
def queue(
    request: Request, session: SessionDep, settings: SettingsDep, principal: Releaser
) -> HTMLResponse:
    """Batches awaiting QA's decision, deviations to close, results awaiting review."""
    return render(
        request, "release/queue.html", principal=principal, queue=qa_queue(session, settings)
    )


@router.post("/batches/{batch_id}/release")
def decide(
    batch_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    principal: Releaser,
    decision: Annotated[Decision, Form()],
    password: Annotated[Password, Form()],
    comment: Annotated[LongText | None, Form()] = None,
    pending_tests: Annotated[str, Form(max_length=2000)] = "",
) -> RedirectResponse:
    """The release form of the batch record: the same e-signed decision as the API."""
    try:
        data = ReleaseCreate(
            decision=decision,
            password=password,
            comment=comment,
            pending_tests=[name.strip() for name in pending_tests.split(",") if name.strip()],
        )
    except ValidationError as exc:
        raise InvalidRequest(f"The form is not valid: {exc.errors()[0]['msg']}.") from exc
    service.decide(session, settings, actor=principal.user, batch_id=batch_id, data=data)
    return RedirectResponse(f"/batches/{batch_id}", status_code=303)
