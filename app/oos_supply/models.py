from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class OosJustification(SQLModel, table=True):
    """The treating physician's justification that not supplying an out-of-specification batch
    is an immediate significant hazard to the patient (EU GMP Part IV §11.5, REL-7), e-signed by
    the clinician who records it. Append-only: a new justification is a new row."""

    __tablename__ = "oos_justification"

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batch.id", index=True)
    physician_name: str = Field(max_length=200)
    hazard: str = Field(sa_type=Text)  # the immediate significant hazard, in the physician's words
    justified_at: datetime = Field(sa_type=UTCDateTime)
    # The tests out of specification when it was recorded (JSON list): it covers only those.
    out_of_specification_tests: str = Field(default="[]", sa_type=Text)
    recorded_by: int = Field(foreign_key="app_user.id")
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class OosNotification(SQLModel, table=True):
    """The sponsor or the competent authority told of an out-of-specification supply: who was
    told, when, and their reference (EU GMP Part IV §11.5, REL-7). Append-only."""

    __tablename__ = "oos_notification"

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batch.id", index=True)
    recipient: str = Field(max_length=16)  # sponsor | authority
    party: str = Field(max_length=200)  # who was notified (organisation, person)
    notified_at: datetime = Field(sa_type=UTCDateTime)
    reference: str = Field(max_length=64)
    out_of_specification_tests: str = Field(default="[]", sa_type=Text)
    recorded_by: int = Field(foreign_key="app_user.id")
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
