from typing import Annotated

from fastapi import Depends, Query

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.pipeline import Router, SessionDep
from app.qualifications import service
from app.qualifications.schemas import QualificationGrant, QualificationPublic, QualificationRevoke
from app.types import Id

router = Router(tags=["qualifications"])

Reader = Annotated[Principal, Depends(require(Permission.QUALIFICATION_READ))]
Granter = Annotated[Principal, Depends(require(Permission.QUALIFICATION_GRANT))]


@router.get("/qualifications", response_model=list[QualificationPublic])
def list_qualifications(
    session: SessionDep, _: Reader, user_id: Annotated[Id | None, Query()] = None
) -> list[QualificationPublic]:
    return service.listing(session, user_id=user_id)


@router.post(
    "/users/{user_id}/qualifications", response_model=list[QualificationPublic], status_code=201
)
def grant(
    user_id: Id, body: QualificationGrant, session: SessionDep, p: Granter
) -> list[QualificationPublic]:
    granted = service.grant(session, actor=p.user, user_id=user_id, data=body)
    return service.granted_public(session, granted)


@router.post("/qualifications/{qualification_id}/revoke", response_model=QualificationPublic)
def revoke(
    qualification_id: Id, body: QualificationRevoke, session: SessionDep, p: Granter
) -> QualificationPublic:
    revoked = service.revoke(
        session, actor=p.user, qualification_id=qualification_id, reason=body.reason
    )
    (shown,) = service.granted_public(session, [revoked])
    return shown
