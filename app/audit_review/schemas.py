from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from app.audit.schemas import AuditEventPublic
from app.signatures.schemas import Password, SignaturePublic
from app.types import LongText, Timestamp


class AuditReviewCreate(BaseModel):
    """QA signs one period of the trail reviewed (AUD-8), with the password again (SIG-1)."""

    model_config = ConfigDict(extra="forbid")

    period_start: Timestamp
    period_end: Timestamp
    password: Password
    comment: LongText | None = None  # required when the period holds exceptions


class PeriodPublic(BaseModel):
    period_start: datetime
    period_end: datetime
    events: int
    exceptions: int


class PendingPublic(BaseModel):
    """Complete periods nobody has signed reviewed yet, oldest first (at most `shown`)."""

    period_days: int
    pending: int  # how many periods are unreviewed in all
    periods: list[PeriodPublic]


class ReviewedEventPublic(AuditEventPublic):
    exception: str | None  # refusal, mismatch, correction, late entry, lock, failed sign-in


class EventPagePublic(BaseModel):
    """One page of the trail of a period, exceptions first, then in `seq` order."""

    period_start: datetime
    period_end: datetime
    filters: dict[str, Any]
    total: int
    exceptions: int
    limit: int
    offset: int
    events: list[ReviewedEventPublic]


class AuditReviewPublic(BaseModel):
    id: int
    period_start: datetime
    period_end: datetime
    events: int
    exceptions: int
    last_seq: int | None
    comment: str | None
    reviewed_by: str
    reviewed_at: datetime
    signature: SignaturePublic
