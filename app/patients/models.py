from datetime import date, datetime

from sqlalchemy import Index, Text, text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class Patient(SQLModel, table=True):
    """MRN and COI are never edited; a wrong record is voided (COI-1)."""

    __tablename__ = "patient"
    __table_args__ = (
        # One live registration per MRN, whatever its case (`ab12` and `AB12` are one patient);
        # a voided registration frees it to be redone. Twins registered before this rule
        # (migration 0009) are marked `mrn_twin_of` and kept out of the index: never merged or
        # edited (COI-1), they wait for QA to void the wrong one.
        Index(
            "uq_patient_mrn_key_live",
            "mrn_key",
            unique=True,
            sqlite_where=text("voided_at IS NULL AND mrn_twin_of IS NULL"),
            postgresql_where=text("voided_at IS NULL AND mrn_twin_of IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    mrn: str = Field(max_length=32)
    # The MRN as compared (patients.service.mrn_key): what makes two MRNs the same patient.
    mrn_key: str = Field(max_length=32, index=True)
    mrn_twin_of: int | None = Field(default=None, foreign_key="patient.id")
    family_name: str = Field(max_length=200)
    given_name: str = Field(max_length=200)
    birth_date: date
    sex: str = Field(max_length=8)
    coi: str = Field(max_length=16, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: int = Field(foreign_key="app_user.id")
    voided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    voided_by: int | None = Field(default=None, foreign_key="app_user.id")
    void_reason: str | None = Field(default=None, sa_type=Text)
