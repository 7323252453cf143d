from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from app.materials.states import LotStatus
from app.types import Id, LongText, Name, Timestamp

CatalogueCode = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
]


class MaterialCategory(StrEnum):
    MEDIUM = "medium"
    SERUM = "serum"
    PLATELET_LYSATE = "platelet_lysate"
    ENZYME = "enzyme"
    REAGENT = "reagent"
    CONSUMABLE = "consumable"
    OTHER = "other"


class EquipmentKind(StrEnum):
    INCUBATOR = "incubator"
    BIOSAFETY_CABINET = "biosafety_cabinet"
    FREEZER = "freezer"
    CENTRIFUGE = "centrifuge"
    CELL_COUNTER = "cell_counter"
    OTHER = "other"


class MaterialCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: CatalogueCode
    name: Name
    category: MaterialCategory


class MaterialPublic(MaterialCreate):
    id: int


class LotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    material_id: Id
    lot_number: CatalogueCode
    supplier: Name
    expires_at: Timestamp


class LotPublic(LotCreate):
    id: int
    material_code: str
    expired: bool
    status: LotStatus  # only a released lot can be used (SEC-5)


class LotStatusSet(BaseModel):
    """QA's QC disposition of a lot, with the reason (SEC-5)."""

    model_config = ConfigDict(extra="forbid")

    status: LotStatus
    reason: LongText


class EquipmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: CatalogueCode
    name: Name
    kind: EquipmentKind
    in_service: bool = True


class EquipmentPublic(EquipmentCreate):
    id: int
    calibration_due_at: datetime | None = None
    qualification_due_at: datetime | None = None
    overdue: bool = True  # calibration or qualification overdue or not on record: refused


class EquipmentDueDates(BaseModel):
    """QA records a calibration or (re)qualification: the next due date(s), with the reason
    (e.g. the certificate's reference). A date not given keeps its current value."""

    model_config = ConfigDict(extra="forbid")

    calibration_due_at: Timestamp | None = None
    qualification_due_at: Timestamp | None = None
    reason: LongText


class EquipmentService(BaseModel):
    model_config = ConfigDict(extra="forbid")

    in_service: bool


class RecallPublic(BaseModel):
    """Everything made with one lot (COI-7): the batches, steps and vessels it touched."""

    lot: LotPublic
    batches: list[dict[str, object]]
    steps: list[dict[str, object]]
    vessels: list[dict[str, object]]
    as_of: datetime
