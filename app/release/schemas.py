from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.batches.states import BatchStatus
from app.signatures.schemas import Meaning, Password, SignaturePublic
from app.types import LongText, Name, Timestamp


class Decision(StrEnum):
    RELEASE = "release"
    CONDITIONAL_RELEASE = "conditional_release"
    REJECT = "reject"


class ReleaseCreate(BaseModel):
    """QA's decision, e-signed with the password (REL-3, SIG-1)."""

    model_config = ConfigDict(extra="forbid")

    decision: Decision
    password: Password
    # The act's own meaning (SIG-6): `released` for a (conditional) release, `rejected` for a
    # rejection; omitted, it is the act's; any other is refused.
    meaning: Meaning | None = None
    comment: LongText | None = None
    pending_tests: Annotated[list[Annotated[str, Field(max_length=40)]], Field(max_length=60)] = []


class ReleasePublic(BaseModel):
    id: int
    batch_id: int
    batch_number: str
    decision: Decision
    status: BatchStatus
    pending_tests: list[str]
    result_ids: list[int]  # the QC results in force when the decision was signed
    out_of_specification: bool
    physician_acceptance_id: int | None
    comment: str | None
    decided_by: str
    decided_at: datetime
    signature: SignaturePublic


class PhysicianAcceptanceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    physician_name: Name  # recorded as given; the signature names the signing clinician
    accepted_at: Timestamp
    note: LongText | None = None
    password: Password  # the signing clinician's own, again (SIG-1, SIG-6)


class PhysicianAcceptancePublic(BaseModel):
    id: int
    batch_id: int
    physician_name: str
    accepted_at: datetime
    note: str | None
    out_of_specification_tests: list[str]
    recorded_by: str
    recorded_at: datetime
    signature: SignaturePublic | None  # None only for an acceptance recorded before SIG-6


class GateCheckPublic(BaseModel):
    check: str
    met: bool
    detail: str


class ReleaseGatePublic(BaseModel):
    """The release gate before anyone signs (REL-6): each condition, met or not."""

    batch_id: int
    batch_number: str
    decision: Decision
    ready: bool
    checks: list[GateCheckPublic]
