from datetime import datetime

from pydantic import BaseModel, ConfigDict

from app.batches.states import BatchStatus
from app.types import Id
from app.vessels.schemas import VesselPublic


class BatchCreate(BaseModel):
    """Only the biopsy is named: DIN, COI and patient are derived from it (COI-2)."""

    model_config = ConfigDict(extra="forbid")

    biopsy_id: Id


class BatchSummary(BaseModel):
    id: int
    batch_number: str
    din: str
    din_check: str
    coi: str
    status: BatchStatus
    patient_id: int
    biopsy_id: int
    created_at: datetime


class BatchAlertPublic(BaseModel):
    id: int
    kind: str
    message: str
    qc_result_id: int | None
    raised_at: datetime


class BatchPublic(BatchSummary):
    allowed_next: list[BatchStatus]
    vessels: list[VesselPublic]
    specification_id: int | None = None
    alerts: list[BatchAlertPublic] = []
