from datetime import datetime

from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class Location(SQLModel, table=True):
    """A place in the hierarchy site > room > freezer or incubator > rack > box > position."""

    __tablename__ = "location"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=16)
    parent_id: int | None = Field(default=None, foreign_key="location.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CustodyEvent(SQLModel, table=True):
    """A vessel changing place or hands: who, from, to, when, at what temperature."""

    __tablename__ = "custody_event"

    id: int | None = Field(default=None, primary_key=True)
    vessel_id: int = Field(foreign_key="vessel.id", index=True)
    event: str = Field(max_length=16)
    from_location: str | None = Field(default=None, max_length=200)
    to_location: str = Field(max_length=200)
    temperature_c: float | None = None
    # For doses: "fresh" or "cryopreserved", which sets the acceptable temperature (CLN-3).
    storage_type: str | None = Field(default=None, max_length=16)
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    recorded_by: int = Field(foreign_key="app_user.id")
