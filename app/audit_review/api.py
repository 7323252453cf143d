"""The periodic audit-trail review (AUD-8): pending periods, the trail of a period, sign-off."""

from typing import Annotated

from fastapi import Depends, Query

from app.audit_review import service
from app.audit_review.schemas import (
    AuditReviewCreate,
    AuditReviewPublic,
    EventPagePublic,
    PendingPublic,
)
from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.pipeline import Router, SessionDep
from app.types import Id, ShortText, Timestamp

router = Router(tags=["audit review"])

Reviewer = Annotated[Principal, Depends(require(Permission.AUDIT_REVIEW))]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=2_000_000_000)]


@router.get("/audit-reviews/pending", response_model=PendingPublic)
def pending(session: SessionDep, settings: SettingsDep, _: Reviewer) -> PendingPublic:
    """Complete periods of the trail nobody has signed reviewed yet, oldest first."""
    return service.pending(session, settings)


@router.get("/audit-reviews/events", response_model=EventPagePublic)
def events(
    session: SessionDep,
    _: Reviewer,
    start: Annotated[Timestamp, Query(alias="from")],
    end: Annotated[Timestamp, Query(alias="to")],
    patient: Id | None = None,
    batch: Id | None = None,
    action: ShortText | None = None,
    user: ShortText | None = None,
    exceptions_only: bool = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> EventPagePublic:
    """One page of the trail between `from` and `to`, filtered, exceptions first."""
    filters = service.EventFilters(patient, batch, action, user, exceptions_only)
    return service.events_page(
        session, start=start, end=end, filters=filters, limit=limit, offset=offset
    )


@router.get("/audit-reviews", response_model=list[AuditReviewPublic])
def reviews(
    session: SessionDep, _: Reviewer, limit: Limit = 100, offset: Offset = 0
) -> list[AuditReviewPublic]:
    """The signed reviews, newest period first."""
    return service.reviews(session, limit=limit, offset=offset)


@router.post("/audit-reviews", response_model=AuditReviewPublic, status_code=201)
def sign(
    body: AuditReviewCreate, session: SessionDep, settings: SettingsDep, p: Reviewer
) -> AuditReviewPublic:
    """QA signs one whole, ended period of the trail reviewed (e-signature, SIG-1..3)."""
    return service.review_public(session, service.sign(session, settings, actor=p.user, data=body))
