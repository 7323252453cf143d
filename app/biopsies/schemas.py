from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.types import CodeInput, FiniteFloat, Id, LongText, Name, Timestamp


class BiopsyStatus(StrEnum):
    COLLECTED = "collected"
    RECEIVED = "received"
    REJECTED = "rejected"
    VOIDED = "voided"


class BiopsyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patient_id: Id
    collected_at: Timestamp
    site: Name
    mass_mg: Annotated[FiniteFloat, Field(gt=0, le=100_000)]


class BiopsyReceipt(BaseModel):
    """Receipt at the lab: the tube must be scanned, never picked from a list."""

    model_config = ConfigDict(extra="forbid")

    scanned_code: CodeInput
    received_at: Timestamp
    temperature_c: Annotated[FiniteFloat, Field(ge=-200, le=60)]
    accepted: bool
    note: LongText | None = None
    # Needed when received_at is older than the late-entry skew (AUD-6).
    late_reason: LongText | None = None


class BiopsyPublic(BaseModel):
    id: int
    din: str
    din_check: str
    patient_id: int
    tube_code: str
    collected_at: datetime
    site: str
    mass_mg: float
    status: BiopsyStatus
    received_at: datetime | None
    receipt_temperature_c: float | None
    accepted: bool | None
    receipt_recorded_at: datetime | None = None
    receipt_late: bool = False
    receipt_late_reason: str | None = None
