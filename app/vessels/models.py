from datetime import datetime

from sqlalchemy import BigInteger, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class Vessel(SQLModel, table=True):
    """A physical container. Its identity is its biopsy's (hence patient's), set on the server.

    `batch_id` is empty only for a biopsy tube whose batch is not registered yet.
    """

    __tablename__ = "vessel"
    __table_args__ = (UniqueConstraint("biopsy_id", "sequence"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=18, unique=True)
    biopsy_id: int = Field(foreign_key="biopsy.id")
    batch_id: int | None = Field(default=None, foreign_key="batch.id", index=True)
    sequence: int
    kind: str = Field(max_length=16)
    status: str = Field(max_length=16)
    parent_id: int | None = Field(default=None, foreign_key="vessel.id", index=True)
    passage: int = 0
    location: str | None = Field(default=None, max_length=200)
    # A storage position holds at most one vessel: enforced by this unique column (several NULLs
    # are allowed on both databases), so two simultaneous moves into one slot cannot both win.
    position_id: int | None = Field(default=None, foreign_key="location.id", unique=True)
    produced_by_step_id: int | None = Field(default=None, foreign_key="step.id", index=True)
    seeded_cells: int | None = Field(default=None, sa_type=BigInteger)
    # Doses (final product bags from formulation) carry what the clinic needs.
    is_dose: bool = False
    cell_count: int | None = Field(default=None, sa_type=BigInteger)
    volume_ml: float | None = None
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: int = Field(foreign_key="app_user.id")
