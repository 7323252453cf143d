from typing import Annotated, Any

from fastapi import Depends

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.materials import service
from app.materials.schemas import (
    EquipmentCreate,
    EquipmentDueDates,
    EquipmentPublic,
    EquipmentService,
    LotCreate,
    LotPublic,
    LotStatusSet,
    MaterialCreate,
    MaterialPublic,
)
from app.pipeline import Router, SessionDep
from app.trace import service as trace
from app.types import Id

router = Router(tags=["catalogue"])

Reader = Annotated[Principal, Depends(require(Permission.CATALOGUE_READ))]
Manager = Annotated[Principal, Depends(require(Permission.CATALOGUE_MANAGE))]
Tracer = Annotated[Principal, Depends(require(Permission.BATCH_READ))]
Disposer = Annotated[Principal, Depends(require(Permission.LOT_DISPOSITION))]
Qualifier = Annotated[Principal, Depends(require(Permission.EQUIPMENT_QUALIFY))]


@router.get("/materials", response_model=list[MaterialPublic])
def list_materials(session: SessionDep, _: Reader) -> list[MaterialPublic]:
    return [service.material_public(m) for m in service.list_materials(session)]


@router.post("/materials", response_model=MaterialPublic, status_code=201)
def create_material(body: MaterialCreate, session: SessionDep, p: Manager) -> MaterialPublic:
    return service.material_public(service.create_material(session, actor=p.user, data=body))


@router.get("/lots", response_model=list[LotPublic])
def list_lots(session: SessionDep, _: Reader) -> list[LotPublic]:
    return [service.lot_public(lot, material) for lot, material in service.list_lots(session)]


@router.post("/lots", response_model=LotPublic, status_code=201)
def create_lot(body: LotCreate, session: SessionDep, p: Manager) -> LotPublic:
    return service.lot_public(*service.create_lot(session, actor=p.user, data=body))


@router.put("/lots/{lot_id}/status", response_model=LotPublic)
def set_lot_status(lot_id: Id, body: LotStatusSet, session: SessionDep, p: Disposer) -> LotPublic:
    """QA releases, quarantines or rejects a lot, with the reason (SEC-5)."""
    return service.lot_public(
        *service.set_lot_status(session, actor=p.user, lot_id=lot_id, data=body)
    )


@router.get("/lots/{lot_id}/recall")
def lot_recall(lot_id: Id, session: SessionDep, _: Tracer) -> dict[str, Any]:
    """Every batch, step, vessel and dose made with this lot (COI-7)."""
    return trace.lot_recall(session, lot_id)


@router.get("/equipment", response_model=list[EquipmentPublic])
def list_equipment(session: SessionDep, _: Reader) -> list[EquipmentPublic]:
    return [service.equipment_public(e) for e in service.list_equipment(session)]


@router.post("/equipment", response_model=EquipmentPublic, status_code=201)
def create_equipment(body: EquipmentCreate, session: SessionDep, p: Manager) -> EquipmentPublic:
    return service.equipment_public(service.create_equipment(session, actor=p.user, data=body))


@router.put("/equipment/{equipment_id}/service", response_model=EquipmentPublic)
def set_service(
    equipment_id: Id, body: EquipmentService, session: SessionDep, p: Manager
) -> EquipmentPublic:
    equipment = service.set_in_service(
        session, actor=p.user, equipment_id=equipment_id, in_service=body.in_service
    )
    return service.equipment_public(equipment)


@router.put("/equipment/{equipment_id}/due-dates", response_model=EquipmentPublic)
def set_due_dates(
    equipment_id: Id, body: EquipmentDueDates, session: SessionDep, p: Qualifier
) -> EquipmentPublic:
    """QA records a calibration or qualification: the next due date(s), with the reason."""
    equipment = service.set_due_dates(session, actor=p.user, equipment_id=equipment_id, data=body)
    return service.equipment_public(equipment)
