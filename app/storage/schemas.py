from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.materials.schemas import CatalogueCode
from app.types import FiniteFloat, Id, LongText, Name, ShortText, Timestamp


class LocationKind(StrEnum):
    SITE = "site"
    ROOM = "room"
    FREEZER = "freezer"
    INCUBATOR = "incubator"
    RACK = "rack"
    BOX = "box"
    POSITION = "position"


class CustodyKind(StrEnum):
    MOVED = "moved"
    DISPATCHED = "dispatched"
    RECEIVED = "received"


class LocationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: CatalogueCode
    name: Name
    kind: LocationKind
    parent_id: Id | None = None


class LocationPublic(LocationCreate):
    id: int
    path: str
    occupied_by: str | None = None


class CustodyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: CustodyKind
    location: ShortText
    temperature_c: Annotated[FiniteFloat, Field(ge=-273, le=100)] | None = None
    occurred_at: Timestamp | None = None
    # Needed when occurred_at is older than the late-entry skew (AUD-6).
    late_reason: LongText | None = None


class CustodyPublic(BaseModel):
    id: int
    vessel_code: str
    event: CustodyKind
    from_location: str | None
    to_location: str
    temperature_c: float | None
    occurred_at: datetime
    recorded_by: str
    recorded_at: datetime | None = None  # the server's time (None: recorded before it was kept)
    late: bool = False
    late_reason: str | None = None
