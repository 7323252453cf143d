from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class Batch(SQLModel, table=True):
    """One manufacturing run from one biopsy; its patient and DIN come from the biopsy."""

    __tablename__ = "batch"

    id: int | None = Field(default=None, primary_key=True)
    batch_number: str = Field(max_length=24, unique=True)
    biopsy_id: int = Field(foreign_key="biopsy.id", unique=True)
    status: str = Field(max_length=24, index=True)
    # When the status last moved (lifecycle.transition stamps it): a batch that ended stays on
    # the clinic's board for a while after this moment (ADR 0013).
    status_changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    held_from: str | None = Field(default=None, max_length=24)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: int = Field(foreign_key="app_user.id")
    # The QC specification version in force when the batch was registered (QC-2).
    specification_id: int | None = Field(default=None, foreign_key="specification.id")


class BatchAlert(SQLModel, table=True):
    """Something the lab and the clinic must see on the batch: a late failing result on a
    (conditionally) released batch (REL-2)."""

    __tablename__ = "batch_alert"

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batch.id", index=True)
    kind: str = Field(max_length=32)
    message: str = Field(sa_type=Text)
    qc_result_id: int | None = Field(default=None, foreign_key="qc_result.id")
    raised_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
