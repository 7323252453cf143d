"""QA's audit page (issue 12 item 4): the verification of the whole trail (AUD-3, AUD-7) run on
request and its outcome in words, and the trail's exports (the API's filters) as downloads.
Each act calls what the JSON API calls; this module only words the outcome."""

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.audit import service
from app.audit.actions import EntityType
from app.audit.api import export
from app.audit.schemas import AuditFilter, VerificationPublic
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches import service as batches
from app.clock import utcnow
from app.pipeline import Router, SessionDep
from app.web import form_model, refusals_shown_on, render

router = Router(include_in_schema=False)

Auditor = Annotated[
    Principal, Depends(refusals_shown_on("audit/refused.html", Permission.AUDIT_READ))
]
FilterText = Annotated[str, Query(max_length=40)]


@dataclass(frozen=True)
class Outcome:
    """A verification as a person reads it: a headline, the service's sentence, the counts."""

    intact: bool
    headline: str
    result: VerificationPublic
    checked_at: datetime
    checked_by: str


def headline(result: VerificationPublic) -> str:
    """INTACT, or where the trail is broken: the first event, a chain, or a record."""
    if result.ok:
        return "INTACT — every event, chain and tracked record holds"
    if result.first_bad_seq is not None:
        return f"BROKEN at event {result.first_bad_seq}"
    if result.bad_scope is not None:
        return f"BROKEN — the chain {result.bad_scope} does not end where its head says"
    if result.first_bad_record is not None:
        bad = result.first_bad_record
        return f"A RECORD DIFFERS from its trail — {bad.table.replace('_', ' ')} {bad.id}"
    return "NOT VERIFIED"


def audit_page(
    request: Request, session: Session, principal: Principal, outcome: Outcome | None = None
) -> HTMLResponse:
    """The page: the verification form (and its outcome), the export form, and for readers of
    patients' trails each recent batch's and patient's trail CSV."""
    permissions = principal.permissions
    patients_visible = {Permission.PATIENT_AUDIT_READ, Permission.BATCH_READ} <= permissions
    recent = batches.find(session, limit=50) if patients_visible else []
    return render(
        request,
        "audit/audit.html",
        principal=principal,
        outcome=outcome,
        entity_types=[t.value for t in EntityType],
        patients_visible=Permission.PATIENT_AUDIT_READ in permissions,
        batches=[batches.summary(context) for context in recent],
    )


@router.get("/qa/audit", response_class=HTMLResponse)
def audit_trail(request: Request, session: SessionDep, principal: Auditor) -> HTMLResponse:
    return audit_page(request, session, principal)


@router.post("/qa/audit/verify", response_class=HTMLResponse)
def verify(request: Request, session: SessionDep, principal: Auditor) -> HTMLResponse:
    """The whole trail verified now, as GET /api/v1/audit/verify does (AUD-3, AUD-7)."""
    result = VerificationPublic.of(service.verify_trail(session))
    outcome = Outcome(result.ok, headline(result), result, utcnow(), principal.user.username)
    return audit_page(request, session, principal, outcome)


@router.get("/qa/audit/export.csv", response_class=Response)
def export_csv(
    session: SessionDep,
    principal: Auditor,
    entity_type: FilterText = "",
    entity_id: FilterText = "",
) -> Response:
    """The export form's download: the API's export with the same filters (blank: none)."""
    found = form_model(
        AuditFilter,
        entity_type=entity_type.strip() or None,
        entity_id=entity_id.strip() or None,
    )
    return export(session, principal, found)
