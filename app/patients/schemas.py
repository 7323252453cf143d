from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator

from app.clock import utcnow
from app.types import LongText, Name

MRN = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9./-]{0,31}$")
]


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class PatientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mrn: MRN
    family_name: Name
    given_name: Name
    birth_date: date
    sex: Sex

    @field_validator("birth_date")
    @classmethod
    def _born_in_the_past(cls, value: date) -> date:
        if value > utcnow().date() or value.year < 1900:
            raise ValueError("birth date must be between 1900 and today")
        return value


class VoidRequest(BaseModel):
    """Voiding a wrong registration: the reason is mandatory (COI-1, AUD-1)."""

    model_config = ConfigDict(extra="forbid")

    reason: LongText


class PatientPublic(BaseModel):
    id: int
    mrn: str
    coi: str
    family_name: str
    given_name: str
    birth_date: date
    sex: Sex
    created_at: datetime
    voided: bool
    voided_at: datetime | None
    void_reason: str | None
    # Registered before MRNs were compared regardless of case, under the MRN of this live
    # patient in another case: one of the two is a wrong registration for QA to void.
    mrn_twin_of: int | None = None
