from typing import Annotated, Literal

from fastapi import Depends, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import Field

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches import service as batches
from app.config import SettingsDep
from app.pipeline import Router, SessionDep
from app.release import certificate, service
from app.release.schemas import (
    Decision,
    PhysicianAcceptanceCreate,
    PhysicianAcceptancePublic,
    ReleaseCreate,
    ReleaseGatePublic,
    ReleasePublic,
)
from app.types import Id
from app.websecurity import DOCUMENT_HEADERS

router = Router(tags=["release"])

Reader = Annotated[Principal, Depends(require(Permission.BATCH_READ))]
Releaser = Annotated[Principal, Depends(require(Permission.BATCH_RELEASE))]
CertificateReader = Annotated[Principal, Depends(require(Permission.CERTIFICATE_READ))]
Physician = Annotated[Principal, Depends(require(Permission.PHYSICIAN_ACCEPTANCE))]


@router.post("/batches/{batch_id}/release", response_model=ReleasePublic)
def decide(
    batch_id: Id, body: ReleaseCreate, session: SessionDep, settings: SettingsDep, p: Releaser
) -> ReleasePublic:
    """QA releases, conditionally releases or rejects the batch, e-signed (REL-1..4)."""
    decision = service.decide(session, settings, actor=p.user, batch_id=batch_id, data=body)
    return service.decision_public(session, decision)


@router.get("/batches/{batch_id}/release-gate", response_model=ReleaseGatePublic)
def release_gate(
    batch_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    p: Releaser,
    decision: Annotated[Decision, Query()] = Decision.RELEASE,
    pending_tests: Annotated[
        list[Annotated[str, Field(max_length=40)]] | None, Query(max_length=60)
    ] = None,
) -> ReleaseGatePublic:
    """Every condition of the decision, met or not, as the calling QA person would meet it, by
    the code the decision itself runs (REL-6)."""
    return service.checklist(
        session,
        settings,
        actor=p.user,
        batch_id=batch_id,
        decision=decision,
        pending_tests=pending_tests or [],
    )


@router.get("/batches/{batch_id}/releases", response_model=list[ReleasePublic])
def decisions(batch_id: Id, session: SessionDep, _: Reader) -> list[ReleasePublic]:
    """Every decision with its signature, and whether the records it covers still match."""
    return service.decisions(session, batch_id)


@router.get("/batches/{batch_id}/certificate", response_class=Response)
def release_certificate(
    batch_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    _: CertificateReader,
    format: Annotated[Literal["html", "pdf"], Query()] = "html",
) -> Response:
    """The release certificate (REL-5), as HTML or PDF."""
    found = certificate.build(session, settings, batch_id)
    if format == "pdf":
        name = f"certificate-{found.facts['Batch']}.pdf"
        return Response(
            certificate.pdf(found),
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{name}"'},
        )
    return HTMLResponse(certificate.html(found), headers=DOCUMENT_HEADERS)


@router.post(
    "/batches/{batch_id}/physician-acceptance",
    response_model=PhysicianAcceptancePublic,
    status_code=201,
)
def physician_acceptance(
    batch_id: Id,
    body: PhysicianAcceptanceCreate,
    session: SessionDep,
    settings: SettingsDep,
    p: Physician,
) -> PhysicianAcceptancePublic:
    """The treating physician's documented acceptance of a conditionally released or
    out-of-specification batch (EU GMP Part IV §11.5), e-signed by the clinician (SIG-6)."""
    row = service.record_acceptance(session, settings, actor=p.user, batch_id=batch_id, data=body)
    return service.acceptance_view(session, row)


@router.get(
    "/batches/{batch_id}/physician-acceptance", response_model=list[PhysicianAcceptancePublic]
)
def physician_acceptances(
    batch_id: Id, session: SessionDep, _: Reader
) -> list[PhysicianAcceptancePublic]:
    batches.get(session, batch_id)
    return service.acceptances(session, batch_id)
