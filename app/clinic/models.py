from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class Infusion(SQLModel, table=True):
    """A dose administered to its patient after the two-person bedside check (COI-6).

    `dose_id` is unique: a dose is infused once, whatever two requests race to do it.
    """

    __tablename__ = "infusion"

    id: int | None = Field(default=None, primary_key=True)
    dose_id: int = Field(foreign_key="vessel.id", unique=True)
    batch_id: int = Field(foreign_key="batch.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    administered_at: datetime = Field(sa_type=UTCDateTime)
    administered_by: int = Field(foreign_key="app_user.id")
    witness_id: int = Field(foreign_key="app_user.id")
    volume_ml: float | None = None
    observations: str | None = Field(default=None, sa_type=Text)
    adverse_reactions: str | None = Field(default=None, sa_type=Text)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    late_reason: str | None = Field(default=None, sa_type=Text)  # AUD-6: entered late, why


class PlannedInfusion(SQLModel, table=True):
    """When a dose is planned to be infused (CLN-2), within the protocol's window."""

    __tablename__ = "planned_infusion"

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batch.id", index=True)
    dose_id: int = Field(foreign_key="vessel.id", unique=True)
    sequence: int  # 1 for the first infusion of the protocol, 2 for the second...
    planned_at: datetime = Field(sa_type=UTCDateTime)
    window_start: datetime = Field(sa_type=UTCDateTime)
    window_end: datetime = Field(sa_type=UTCDateTime)
    created_by: int = Field(foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
