from datetime import datetime

from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class Batch(SQLModel, table=True):
    """One manufacturing run from one biopsy; its patient and DIN come from the biopsy."""

    __tablename__ = "batch"

    id: int | None = Field(default=None, primary_key=True)
    batch_number: str = Field(max_length=24, unique=True)
    biopsy_id: int = Field(foreign_key="biopsy.id", unique=True)
    status: str = Field(max_length=24)
    held_from: str | None = Field(default=None, max_length=24)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: int = Field(foreign_key="app_user.id")
