from datetime import datetime

from sqlalchemy import Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime

# At most one version of a group is in force: the database decides between two approvals made
# at the same moment (ADR 0022).
ONE_APPROVED = "status = 'approved'"


class GmpSetting(SQLModel, table=True):
    """One version of one group of GMP settings (QC-3): `draft` → `approved` (QA, e-signed, with
    a reason) → `superseded`. The values (canonical JSON) of a version are never edited: a change
    is a new version."""

    __tablename__ = "gmp_setting"
    __table_args__ = (
        UniqueConstraint("group_name", "version"),
        Index(
            "uq_gmp_setting_one_approved",
            "group_name",
            unique=True,
            sqlite_where=text(ONE_APPROVED),
            postgresql_where=text(ONE_APPROVED),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    group_name: str = Field(max_length=40)
    version: int
    status: str = Field(default="draft", max_length=16)
    content: str = Field(sa_type=Text)
    reason: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: int | None = Field(default=None, foreign_key="app_user.id")
