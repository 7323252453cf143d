from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class Biopsy(SQLModel, table=True):
    """One tissue collection, identified by its DIN for life (COI-1)."""

    __tablename__ = "biopsy"

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    din: str = Field(max_length=13, unique=True)
    collected_at: datetime = Field(sa_type=UTCDateTime)
    site: str = Field(max_length=200)
    mass_mg: float
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: int = Field(foreign_key="app_user.id")
    received_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    received_by: int | None = Field(default=None, foreign_key="app_user.id")
    receipt_temperature_c: float | None = None
    accepted: bool | None = None
    receipt_note: str | None = Field(default=None, sa_type=Text)
    # When the server recorded the receipt, and why it was entered late (AUD-6).
    receipt_recorded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    receipt_late_reason: str | None = Field(default=None, sa_type=Text)
    voided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    voided_by: int | None = Field(default=None, foreign_key="app_user.id")
    void_reason: str | None = Field(default=None, sa_type=Text)
