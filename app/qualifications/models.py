from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class Qualification(SQLModel, table=True):
    """One training record: `user_id` may perform `duty` from `valid_from` until `expires_at`,
    unless revoked. A renewal is a new row; a row is never edited but to revoke it."""

    __tablename__ = "qualification"
    __table_args__ = (Index("ix_qualification_user_duty", "user_id", "duty"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id")
    duty: str = Field(max_length=32)
    valid_from: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    reason: str = Field(max_length=4000)
    granted_by: str = Field(max_length=64)  # the granting user's username, or "demo", "cli"
    granted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_by: str | None = Field(default=None, max_length=64)
    revoke_reason: str | None = Field(default=None, max_length=4000)
