from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from app.batches.schemas import BatchSummary
from app.types import CodeInput, Id
from app.vessels.schemas import VesselPublic


class ScanExpectation(BaseModel):
    """What the person scanning believes the vessel is; every given field must hold (COI-5)."""

    model_config = ConfigDict(extra="forbid")

    batch_id: Id | None = None
    # The batch number as printed on labels and pages (B26-00008), beside the internal id.
    batch_number: Annotated[str, StringConstraints(strip_whitespace=True, max_length=24)] | None = (
        None
    )
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
    # What the scan checked and found to hold ("batch B26-00008", "DIN ..."): empty for a plain
    # look-up, which confirms nothing.
    checked: list[str] = []
    # False when the vessel must not be used: consumed, discarded, infused, or a biopsy tube not
    # received and accepted at the lab; `flags` says why, and warns of a batch on hold.
    usable: bool = True
    flags: list[str] = []
