from datetime import datetime

from pydantic import BaseModel, ConfigDict, model_validator

from app.deviations.states import DeviationKind, DeviationStatus
from app.signatures.schemas import Meaning, Password, SignaturePublic
from app.types import LongText


class DeviationCreate(BaseModel):
    """A deviation anyone on the batch may open; out-of-specification ones open themselves."""

    model_config = ConfigDict(extra="forbid")

    kind: DeviationKind = DeviationKind.PROCESS
    description: LongText


class DeviationUpdate(BaseModel):
    """The investigation, root cause and CAPA, filled in as the investigation goes."""

    model_config = ConfigDict(extra="forbid")

    investigation: LongText | None = None
    root_cause: LongText | None = None
    capa: LongText | None = None

    @model_validator(mode="after")
    def _something(self) -> "DeviationUpdate":
        if self.investigation is None and self.root_cause is None and self.capa is None:
            raise ValueError("give at least one of investigation, root_cause, capa")
        return self


class DeviationClose(BaseModel):
    """QA's closure, e-signed; the investigation fields may be completed in the same call."""

    model_config = ConfigDict(extra="forbid")

    password: Password
    meaning: Meaning = Meaning.APPROVED
    comment: LongText | None = None
    investigation: LongText | None = None
    root_cause: LongText | None = None
    capa: LongText | None = None


class DeviationPublic(BaseModel):
    id: int
    number: str
    batch_id: int
    batch_number: str
    kind: DeviationKind
    status: DeviationStatus
    description: str
    qc_result_id: int | None
    opened_by: str
    opened_at: datetime
    investigation: str | None
    root_cause: str | None
    capa: str | None
    closed_by: str | None
    closed_at: datetime | None
    signatures: list[SignaturePublic]
