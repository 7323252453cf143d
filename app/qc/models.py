from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class QcResult(SQLModel, table=True):
    """One measured value of one test on one batch, evaluated when entered (QC-2).

    Never overwritten: a correction is a new row naming the one it supersedes (unique, so a
    result is corrected at most once and the history stays a line), with a reason.
    """

    __tablename__ = "qc_result"

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batch.id", index=True)
    specification_test_id: int = Field(foreign_key="specification_test.id")
    test: str = Field(max_length=40)
    value_number: float | None = None
    value_text: str | None = Field(default=None, max_length=64)
    unit: str | None = Field(default=None, max_length=32)
    # What was typed, when the unit was converted (e.g. {"value": 0.85, "unit": "fraction"}).
    entered_as: str | None = Field(default=None, sa_type=Text)
    outcome: str = Field(max_length=8)
    sample_vessel_id: int | None = Field(default=None, foreign_key="vessel.id")
    supersedes_id: int | None = Field(default=None, foreign_key="qc_result.id", unique=True)
    reason: str | None = Field(default=None, sa_type=Text)
    note: str | None = Field(default=None, sa_type=Text)
    entered_by: int = Field(foreign_key="app_user.id")
    entered_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
