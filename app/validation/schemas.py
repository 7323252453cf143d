from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from app.signatures.schemas import Password, SignaturePublic
from app.types import LongText

Sha256 = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9a-fA-F]{64}$")]


class ReportMeaning(StrEnum):
    """What QA's signature on a qualification report means (21 CFR 11.50(a)(3))."""

    REVIEWED = "reviewed"
    APPROVED = "approved"


class ValidationReportSign(BaseModel):
    """QA signs a report by its hash: their password again (SIG-1), the meaning, a comment."""

    model_config = ConfigDict(extra="forbid")

    sha256: Sha256
    password: Password
    meaning: ReportMeaning = ReportMeaning.APPROVED
    comment: LongText | None = None


class ValidationReportPublic(BaseModel):
    id: int
    sha256: str
    meaning: str
    signature: SignaturePublic
