from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from app.types import LongText


class Meaning(StrEnum):
    """What a signature means (21 CFR 11.50(a)(3))."""

    PERFORMED = "performed"
    REVIEWED = "reviewed"
    APPROVED = "approved"
    RELEASED = "released"
    REJECTED = "rejected"


class SignedRecord(StrEnum):
    """The kinds of record that carry signatures."""

    SPECIFICATION = "specification"
    QC_RESULT = "qc_result"
    DEVIATION = "deviation"
    RELEASE = "release"
    PHYSICIAN_ACCEPTANCE = "physician_acceptance"
    VALIDATION_REPORT = "validation_report"
    GMP_SETTING = "gmp_setting"
    OOS_JUSTIFICATION = "oos_justification"  # REL-7
    AUDIT_REVIEW = "audit_review"  # AUD-8


# A password is checked, never stored or echoed; bounded so hashing cannot be abused.
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class SignatureInput(BaseModel):
    """What a person gives to sign: their password again (SIG-1) and an optional comment."""

    model_config = ConfigDict(extra="forbid")

    password: Password
    comment: LongText | None = None


class SignaturePublic(BaseModel):
    """The signature manifestation (SIG-2) and whether the record still matches it (SIG-3)."""

    id: int
    signed_by: str  # the printed name of the signer
    username: str
    user_id: int
    signed_at: datetime
    meaning: Meaning
    record_type: SignedRecord
    record_id: int
    record_hash: str
    comment: str | None
    matches: bool
