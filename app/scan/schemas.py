from pydantic import BaseModel, ConfigDict

from app.batches.schemas import BatchSummary
from app.types import CodeInput, Id
from app.vessels.schemas import VesselPublic


class ScanExpectation(BaseModel):
    """What the person scanning believes the vessel is; every given field must hold (COI-5)."""

    model_config = ConfigDict(extra="forbid")

    batch_id: Id | None = None
    patient_id: Id | None = None
    din: CodeInput | None = None


class ScanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: CodeInput
    expect: ScanExpectation | None = None


class ScanResult(BaseModel):
    vessel: VesselPublic
    batch: BatchSummary | None
    din: str
    din_check: str
    coi: str
    patient_id: int
