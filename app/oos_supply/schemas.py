from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from app.signatures.schemas import Password, SignaturePublic
from app.types import LongText, Name, ShortText, Timestamp


class Recipient(StrEnum):
    SPONSOR = "sponsor"
    AUTHORITY = "authority"


class JustificationCreate(BaseModel):
    """The treating physician's justification, e-signed with the clinician's password."""

    model_config = ConfigDict(extra="forbid")

    physician_name: Name
    hazard: LongText
    justified_at: Timestamp
    password: Password


class NotificationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipient: Recipient
    party: Name
    notified_at: Timestamp
    reference: ShortText


class JustificationPublic(BaseModel):
    id: int
    batch_id: int
    physician_name: str
    hazard: str
    justified_at: datetime
    out_of_specification_tests: list[str]
    recorded_by: str
    recorded_at: datetime
    signature: SignaturePublic | None
    counts: bool  # signed by its recorder, unchanged, and covering every failing result now


class NotificationPublic(BaseModel):
    id: int
    batch_id: int
    recipient: Recipient
    party: str
    notified_at: datetime
    reference: str
    out_of_specification_tests: list[str]
    recorded_by: str
    recorded_at: datetime
    counts: bool  # covers every failing result now


class OosSupplyPublic(BaseModel):
    """What an out-of-specification batch needs before a dose is dispatched (REL-7)."""

    batch_id: int
    batch_number: str
    failing_tests: list[str]
    out_of_specification: bool
    complete: bool  # nothing missing (or nothing needed)
    missing: list[str]
    justifications: list[JustificationPublic]
    notifications: list[NotificationPublic]
