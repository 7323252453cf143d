"""QA's pages (issue 12 item 5): the queue with each batch's release gate, the second-person
review of a result, the investigation and e-signed closure of a deviation, and the e-signed
release decision taken from the batch record. Each form calls the API's own service."""

from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.deviations import service as deviations
from app.deviations.schemas import DeviationClose, DeviationUpdate
from app.pipeline import Router, SessionDep
from app.qc import service as qc
from app.release import service
from app.release.queue import qa_queue
from app.release.schemas import Decision, ReleaseCreate
from app.signatures.schemas import SignatureInput
from app.types import Id
from app.web import form_model, refusals_shown_on, render

router = Router(include_in_schema=False)

REFUSED = "release/refused.html"
Releaser = Annotated[Principal, Depends(refusals_shown_on(REFUSED, Permission.BATCH_RELEASE))]
Reviewer = Annotated[Principal, Depends(refusals_shown_on(REFUSED, Permission.QC_REVIEW))]
Investigator = Annotated[
    Principal, Depends(refusals_shown_on(REFUSED, Permission.DEVIATION_INVESTIGATE))
]
Closer = Annotated[Principal, Depends(refusals_shown_on(REFUSED, Permission.DEVIATION_CLOSE))]

Text = Annotated[str, Form(max_length=4000)]
Secret = Annotated[str, Form(max_length=256)]


class Back(StrEnum):
    """Where a QA form returns: the queue or the batch's record (never a URL from the form)."""

    QA = "qa"
    BATCH = "batch"


BackField = Annotated[Back, Form()]


def _back(back: Back, batch_id: int, anchor: str) -> RedirectResponse:
    where = "/qa" if back is Back.QA else f"/batches/{batch_id}"
    return RedirectResponse(f"{where}#{anchor}", status_code=303)


def _optional(text: str) -> str | None:
    return text.strip() or None


@router.get("/qa", response_class=HTMLResponse)
def queue(
    request: Request, session: SessionDep, settings: SettingsDep, principal: Releaser
) -> HTMLResponse:
    """Batches awaiting QA's decision, each with its release gate as this QA person would meet
    it; deviations to close; critical results awaiting review."""
    found = qa_queue(session, settings)
    gates = {
        q.batch.id: service.checklist(
            session,
            settings,
            actor=principal.user,
            batch_id=q.batch.id,
            decision=Decision.RELEASE,
            pending_tests=[],
        )
        for q in found.batches
    }
    return render(request, "release/queue.html", principal=principal, queue=found, gates=gates)


@router.post("/batches/{batch_id}/release")
def decide(
    batch_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    principal: Releaser,
    decision: Annotated[str, Form(max_length=40)],
    password: Secret,
    comment: Text = "",
    pending_tests: Annotated[str, Form(max_length=2000)] = "",
) -> RedirectResponse:
    """The release dialog of the batch record: the same e-signed decision as the API, with
    the meaning the act fixes (SIG-6); the record then opens on the signed result."""
    data = form_model(
        ReleaseCreate,
        decision=decision,
        password=password,
        comment=_optional(comment),
        pending_tests=[name.strip() for name in pending_tests.split(",") if name.strip()],
    )
    service.decide(session, settings, actor=principal.user, batch_id=batch_id, data=data)
    return RedirectResponse(f"/batches/{batch_id}#decision", status_code=303)


@router.post("/qa/results/{result_id}/review")
def review(
    result_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    principal: Reviewer,
    password: Secret,
    comment: Text = "",
    back: BackField = Back.QA,
) -> RedirectResponse:
    """A second person's e-signed review of a result (meaning `reviewed`); never its author."""
    data = form_model(SignatureInput, password=password, comment=_optional(comment))
    result = qc.review(session, settings, actor=principal.user, result_id=result_id, data=data)
    return _back(back, result.batch_id, "reviews" if back is Back.QA else "qc")


@router.post("/qa/deviations/{deviation_id}/investigation")
def investigate(
    deviation_id: Id,
    session: SessionDep,
    principal: Investigator,
    investigation: Text = "",
    root_cause: Text = "",
    capa: Text = "",
    back: BackField = Back.QA,
) -> RedirectResponse:
    """The investigation, root cause and CAPA recorded as far as they go."""
    data = form_model(
        DeviationUpdate,
        investigation=_optional(investigation),
        root_cause=_optional(root_cause),
        capa=_optional(capa),
    )
    found = deviations.update(session, actor=principal.user, deviation_id=deviation_id, data=data)
    return _back(back, found.batch_id, f"deviation-{deviation_id}")


@router.post("/qa/deviations/{deviation_id}/close")
def close(
    deviation_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    principal: Closer,
    password: Secret,
    comment: Text = "",
    back: BackField = Back.QA,
) -> RedirectResponse:
    """QA closes the deviation, e-signed with the meaning the closure has (`approved`)."""
    data = form_model(DeviationClose, password=password, comment=_optional(comment))
    found = deviations.close(
        session, settings, actor=principal.user, deviation_id=deviation_id, data=data
    )
    return _back(back, found.batch_id, f"deviation-{deviation_id}")
