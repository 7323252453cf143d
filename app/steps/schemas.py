from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.steps.rules import StepKind
from app.types import CodeInput, FiniteFloat, Id, LongText, ShortText, Timestamp
from app.vessels.schemas import VesselPublic
from app.vessels.states import VesselKind

# Figures the server derives from what was entered; a client may not supply them.
SERVER_COMPUTED = frozenset({"population_doublings"})
CellCount = Annotated[int, Field(ge=0, le=10**13)]
MeasurementKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
MeasurementValue = FiniteFloat | int | bool | ShortText


class OutputSpec(BaseModel):
    """One vessel a step makes; its code, batch and patient are set by the server."""

    model_config = ConfigDict(extra="forbid")

    kind: VesselKind
    location: ShortText | None = None
    seeded_cells: CellCount | None = None
    # Doses (bags made by formulation):
    cell_count: CellCount | None = None
    volume_ml: Annotated[FiniteFloat, Field(gt=0, le=5000)] | None = None
    expires_at: Timestamp | None = None


class MaterialUse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lot_id: Id
    quantity: ShortText | None = None


class EquipmentUse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    equipment_id: Id


class StepCreate(BaseModel):
    """A processing step. Inputs are scanned codes; nothing here names a patient (COI-2)."""

    model_config = ConfigDict(extra="forbid")

    kind: StepKind
    inputs: Annotated[list[CodeInput], Field(max_length=100)]
    outputs: Annotated[list[OutputSpec], Field(max_length=100)] = []
    materials: Annotated[list[MaterialUse | Id], Field(max_length=50)] = []
    equipment: Annotated[list[EquipmentUse | Id], Field(max_length=50)] = []
    measurements: Annotated[dict[MeasurementKey, MeasurementValue], Field(max_length=40)] = {}
    performed_at: Timestamp | None = None
    # Needed when performed_at is older than the late-entry skew (AUD-6).
    late_reason: LongText | None = None
    reason: LongText | None = None
    note: LongText | None = None

    @field_validator("measurements")
    @classmethod
    def _no_derived_figures(cls, value: dict[str, Any]) -> dict[str, Any]:
        owned = sorted(SERVER_COMPUTED & set(value))
        if owned:
            raise ValueError(f"{', '.join(owned)} is computed by the server, not entered")
        return value

    @field_validator("materials")
    @classmethod
    def _each_lot_once(cls, value: list[MaterialUse | int]) -> list[MaterialUse | int]:
        ids = [use.lot_id if isinstance(use, MaterialUse) else use for use in value]
        if len(set(ids)) != len(ids):
            raise ValueError("the same lot is listed twice")
        return value


class StepPublic(BaseModel):
    id: int
    batch_id: int
    kind: StepKind
    performed_at: datetime
    performed_by: str
    recorded_at: datetime
    late: bool = False
    late_reason: str | None = None
    measurements: dict[str, Any]
    reason: str | None
    note: str | None
    inputs: list[str]
    outputs: list[VesselPublic]
    materials: list[dict[str, Any]]
    equipment: list[dict[str, Any]]
    warnings: list[str] = []
