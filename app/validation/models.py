from datetime import datetime

from sqlmodel import Field, SQLModel

from app.db import UTCDateTime


class ValidationReport(SQLModel, table=True):
    """One e-signed act on an operational-qualification report, known by the SHA-256 of its
    report.json (VAL-1). A report reviewed and then approved has two rows, each with its
    signature (signature.record_type = "validation_report")."""

    __tablename__ = "validation_report"

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(max_length=64, index=True)
    meaning: str = Field(max_length=16)
    signed_by: int = Field(foreign_key="app_user.id")
    signed_at: datetime = Field(sa_type=UTCDateTime)
