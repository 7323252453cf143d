from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class ReleaseDecision(SQLModel, table=True):
    """QA's e-signed disposition of a batch (REL-3): released, conditionally released (naming the
    tests still pending) or rejected. A batch may have several (conditional, then full)."""

    __tablename__ = "release_decision"

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batch.id", index=True)
    decision: str = Field(max_length=24)
    status: str = Field(max_length=24)  # the batch status the decision set
    pending_tests: str = Field(default="[]", sa_type=Text)  # JSON list
    # The records the decision was taken on (JSON lists of ids): the signature covers them.
    result_ids: str = Field(default="[]", sa_type=Text)
    deviation_ids: str = Field(default="[]", sa_type=Text)
    out_of_specification: bool = False
    physician_acceptance_id: int | None = Field(default=None, foreign_key="physician_acceptance.id")
    comment: str | None = Field(default=None, sa_type=Text)
    decided_by: int = Field(foreign_key="app_user.id")
    decided_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PhysicianAcceptance(SQLModel, table=True):
    """The treating physician's documented request or acceptance: needed before a conditionally
    released or out-of-specification batch is supplied (EU GMP Part IV §11.5) or infused."""

    __tablename__ = "physician_acceptance"

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batch.id", index=True)
    physician_name: str = Field(max_length=200)
    accepted_at: datetime = Field(sa_type=UTCDateTime)
    note: str | None = Field(default=None, sa_type=Text)
    # The tests out of specification when it was recorded (JSON list): an OOS batch is supplied
    # only if the physician accepted every failing result it has (EU GMP Part IV §11.5).
    out_of_specification_tests: str = Field(default="[]", sa_type=Text)
    recorded_by: int = Field(foreign_key="app_user.id")
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
