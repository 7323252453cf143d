from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class AuditReview(SQLModel, table=True):
    """QA's e-signed review of one period of the audit trail (EU GMP Annex 11 §9, AUD-8): the
    period, how many events and exceptions it held when reviewed, and the reviewer's comment.
    One review per period (unique start); append-only."""

    __tablename__ = "audit_review"

    id: int | None = Field(default=None, primary_key=True)
    period_start: datetime = Field(sa_type=UTCDateTime, unique=True)
    period_end: datetime = Field(sa_type=UTCDateTime)
    events: int
    exceptions: int
    last_seq: int | None = None  # the newest event of the period when it was reviewed
    comment: str | None = Field(default=None, sa_type=Text)
    reviewed_by: int = Field(foreign_key="app_user.id")
    reviewed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
