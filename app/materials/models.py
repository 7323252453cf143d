from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class Material(SQLModel, table=True):
    """A catalogue entry: a medium, serum or platelet lysate, enzyme, reagent."""

    __tablename__ = "material"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=200)
    category: str = Field(max_length=24)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MaterialLot(SQLModel, table=True):
    """One received lot of a material; only a lot QC released (`status`, states.py) and not
    expired can be used by a step (SEC-5, 21 CFR 1271.210)."""

    __tablename__ = "material_lot"
    __table_args__ = (UniqueConstraint("material_id", "lot_number"),)

    id: int | None = Field(default=None, primary_key=True)
    material_id: int = Field(foreign_key="material.id", index=True)
    lot_number: str = Field(max_length=64)
    supplier: str = Field(max_length=200)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default="quarantine", max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Equipment(SQLModel, table=True):
    """An incubator, biosafety cabinet, freezer...; equipment out of service, or whose
    calibration or qualification is overdue or not on record, cannot be used (SEC-5)."""

    __tablename__ = "equipment"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=24)
    in_service: bool = True
    calibration_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    qualification_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
