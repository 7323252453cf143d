from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class Step(SQLModel, table=True):
    """One recorded processing operation on vessels of one batch."""

    __tablename__ = "step"

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batch.id", index=True)
    kind: str = Field(max_length=24)
    performed_at: datetime = Field(sa_type=UTCDateTime)
    performed_by: int = Field(foreign_key="app_user.id")
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    late_reason: str | None = Field(default=None, sa_type=Text)  # AUD-6: entered late, why
    # Canonical JSON of the measurements (and derived figures such as population doublings).
    measurements: str = Field(default="{}", sa_type=Text)
    reason: str | None = Field(default=None, sa_type=Text)
    note: str | None = Field(default=None, sa_type=Text)


class StepInput(SQLModel, table=True):
    """A vessel a step used (consumed, thawed, sampled or discarded)."""

    __tablename__ = "step_input"

    step_id: int = Field(foreign_key="step.id", primary_key=True)
    vessel_id: int = Field(foreign_key="vessel.id", primary_key=True, index=True)


class StepMaterial(SQLModel, table=True):
    __tablename__ = "step_material"

    step_id: int = Field(foreign_key="step.id", primary_key=True)
    lot_id: int = Field(foreign_key="material_lot.id", primary_key=True, index=True)
    quantity: str | None = Field(default=None, max_length=64)


class StepEquipment(SQLModel, table=True):
    __tablename__ = "step_equipment"

    step_id: int = Field(foreign_key="step.id", primary_key=True)
    equipment_id: int = Field(foreign_key="equipment.id", primary_key=True, index=True)
