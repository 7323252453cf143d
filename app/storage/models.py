from datetime import datetime

from sqlalchemy import Text
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
    # When it happened (the client may say), and when the server recorded it (AUD-6): events
    # are ordered by recording (their id), never by a client's clock. Empty before revision 0008.
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    recorded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    late_reason: str | None = Field(default=None, sa_type=Text)
    recorded_by: int = Field(foreign_key="app_user.id")
