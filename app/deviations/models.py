from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class Deviation(SQLModel, table=True):
    """A recorded departure (out-of-specification result, process deviation) on one batch, with
    its investigation; closed by QA with an e-signature. While open, the batch is on hold."""

    __tablename__ = "deviation"

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=24, unique=True)
    batch_id: int = Field(foreign_key="batch.id", index=True)
    kind: str = Field(max_length=24)
    status: str = Field(max_length=16)
    description: str = Field(sa_type=Text)
    qc_result_id: int | None = Field(default=None, foreign_key="qc_result.id", index=True)
    opened_by: int = Field(foreign_key="app_user.id")
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    investigation: str | None = Field(default=None, sa_type=Text)
    root_cause: str | None = Field(default=None, sa_type=Text)
    capa: str | None = Field(default=None, sa_type=Text)
    closed_by: int | None = Field(default=None, foreign_key="app_user.id")
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
