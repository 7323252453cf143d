from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from app.steps.rules import StepKind
from app.types import Id, LongText, Timestamp


class Duty(StrEnum):
    """What a person is qualified for: each step kind, the QC review, the bedside witness.
    The step kinds' values are the StepKind values (tests/qualifications checks they match)."""

    ISOLATION = "isolation"
    PASSAGE = "passage"
    HARVEST = "harvest"
    CRYOPRESERVATION = "cryopreservation"
    THAW = "thaw"
    FORMULATION = "formulation"
    QC_SAMPLING = "qc_sampling"
    DISCARD = "discard"
    QC_REVIEW = "qc_review"
    BEDSIDE_WITNESS = "bedside_witness"

    @classmethod
    def of_step(cls, kind: StepKind) -> "Duty":
        return cls(kind.value)


class QualificationGrant(BaseModel):
    """QA grants `duties` to a user, from `valid_from` (default now) until `expires_at`."""

    model_config = ConfigDict(extra="forbid")

    duties: list[Duty] = Field(min_length=1, max_length=len(Duty))
    expires_at: Timestamp
    valid_from: Timestamp | None = None
    reason: LongText


class QualificationRevoke(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: LongText


class QualificationPublic(BaseModel):
    id: int
    user_id: Id
    username: str
    duty: Duty
    valid_from: datetime
    expires_at: datetime
    reason: str
    granted_by: str
    granted_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    current: bool  # in force now: started, not expired, not revoked
