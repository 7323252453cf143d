"""The catalogue of materials, lots and equipment; the checks a step makes before using them:
a lot QC released and not expired, equipment in service, calibrated and qualified (SEC-5)."""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth.models import User
from app.clock import utcnow
from app.db import add_unique
from app.errors import (
    DuplicateCode,
    EquipmentOutOfService,
    EquipmentOverdue,
    ExpiredLot,
    InvalidRequest,
    LotNotReleased,
    NotFound,
)
from app.gmp_settings import service as gmp_settings
from app.lifecycle import transition
from app.materials.models import Equipment, Material, MaterialLot
from app.materials.schemas import (
    EquipmentCreate,
    EquipmentDueDates,
    EquipmentPublic,
    LotCreate,
    LotPublic,
    LotStatusSet,
    MaterialCreate,
    MaterialPublic,
)
from app.materials.states import LOT_LIFECYCLE, LotStatus


def material_public(material: Material) -> MaterialPublic:
    return MaterialPublic.model_validate(material, from_attributes=True)


def lot_public(lot: MaterialLot, material: Material, now: datetime | None = None) -> LotPublic:
    return LotPublic(
        id=lot.id or 0,
        material_id=lot.material_id,
        lot_number=lot.lot_number,
        supplier=lot.supplier,
        expires_at=lot.expires_at,
        material_code=material.code,
        expired=lot.expires_at <= (now or utcnow()),
        status=LotStatus(lot.status),
    )


def equipment_public(equipment: Equipment, now: datetime | None = None) -> EquipmentPublic:
    return EquipmentPublic(
        id=equipment.id or 0,
        code=equipment.code,
        name=equipment.name,
        kind=equipment.kind,  # type: ignore[arg-type]  # an EquipmentKind value
        in_service=equipment.in_service,
        calibration_due_at=equipment.calibration_due_at,
        qualification_due_at=equipment.qualification_due_at,
        overdue=_overdue(equipment, now or utcnow()) is not None,
    )


def _overdue(equipment: Equipment, at: datetime) -> str | None:
    """Why `equipment` may not be used at `at` for want of calibration or qualification."""
    for what, due in (
        ("calibration", equipment.calibration_due_at),
        ("qualification", equipment.qualification_due_at),
    ):
        if due is None:
            return f"has no {what} on record"
        if due <= at:
            return f"was due for {what} on {due:%Y-%m-%d}"
    return None


def _create(
    session: Session,
    record,
    *,
    actor: User,
    action: AuditAction,
    entity_type: EntityType,
    conflict: str,
    new: dict,
) -> None:
    add_unique(session, record, DuplicateCode(conflict))
    audit.record(
        session,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=record.id,
        new=new,
        coi=None,
    )


def create_material(session: Session, *, actor: User, data: MaterialCreate) -> Material:
    material = Material(**data.model_dump())
    _create(
        session,
        material,
        actor=actor,
        action=AuditAction.MATERIAL_CREATED,
        entity_type=EntityType.MATERIAL,
        new=data.model_dump(),
        conflict=f"A material with code {data.code} already exists.",
    )
    return material


def create_lot(session: Session, *, actor: User, data: LotCreate) -> tuple[MaterialLot, Material]:
    material = session.get(Material, data.material_id)
    if material is None:
        raise NotFound(f"No material has id {data.material_id}.")
    lot = MaterialLot(**data.model_dump())
    _create(
        session,
        lot,
        actor=actor,
        action=AuditAction.MATERIAL_LOT_CREATED,
        entity_type=EntityType.MATERIAL_LOT,
        new=data.model_dump(),
        conflict=f"Lot {data.lot_number} of {material.code} is already registered.",
    )
    return lot, material


def create_equipment(session: Session, *, actor: User, data: EquipmentCreate) -> Equipment:
    equipment = Equipment(**data.model_dump())
    _create(
        session,
        equipment,
        actor=actor,
        action=AuditAction.EQUIPMENT_CREATED,
        entity_type=EntityType.EQUIPMENT,
        new=data.model_dump(),
        conflict=f"Equipment with code {data.code} already exists.",
    )
    return equipment


def set_in_service(
    session: Session, *, actor: User, equipment_id: int, in_service: bool
) -> Equipment:
    equipment = session.get(Equipment, equipment_id, with_for_update=True)
    if equipment is None:
        raise NotFound(f"No equipment has id {equipment_id}.")
    old = equipment.in_service
    equipment.in_service = in_service
    session.add(equipment)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.EQUIPMENT_SERVICE_CHANGED,
        entity_type=EntityType.EQUIPMENT,
        entity_id=equipment.id,
        old={"in_service": old},
        new={"in_service": in_service},
        coi=None,
    )
    return equipment


def set_lot_status(
    session: Session, *, actor: User, lot_id: int, data: LotStatusSet
) -> tuple[MaterialLot, Material]:
    """QA's QC disposition of a lot, audited with the reason. The lot row is locked, so a step
    using the lot (which holds it shared until commit) is either in before or sees the change."""
    lot = session.execute(
        select(MaterialLot)
        .where(MaterialLot.id == lot_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if lot is None:
        raise NotFound(f"No material lot has id {lot_id}.")
    material = session.get(Material, lot.material_id)
    assert material is not None
    transition(
        session,
        LOT_LIFECYCLE,
        lot,
        data.status,
        actor=actor,
        coi=None,
        label=f"Lot {lot.lot_number} of {material.code}",
        reason=data.reason,
    )
    return lot, material


def set_due_dates(
    session: Session, *, actor: User, equipment_id: int, data: EquipmentDueDates
) -> Equipment:
    """QA records a calibration or qualification: the next due date(s), audited with the
    reason; the row is locked like a lot's status change."""
    if data.calibration_due_at is None and data.qualification_due_at is None:
        raise InvalidRequest("Give a calibration or a qualification due date.")
    equipment = session.get(Equipment, equipment_id, with_for_update=True, populate_existing=True)
    if equipment is None:
        raise NotFound(f"No equipment has id {equipment_id}.")
    changed = data.model_dump(exclude_none=True, exclude={"reason"})
    old = {field: getattr(equipment, field) for field in changed}
    for field, value in changed.items():
        setattr(equipment, field, value)
    session.add(equipment)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.EQUIPMENT_DUE_DATES_SET,
        entity_type=EntityType.EQUIPMENT,
        entity_id=equipment.id,
        old=old,
        new=changed,
        reason=data.reason,
        coi=None,
    )
    return equipment


def list_materials(session: Session) -> list[Material]:
    return list(session.execute(select(Material).order_by(col(Material.code))).scalars())


def list_lots(session: Session) -> list[tuple[MaterialLot, Material]]:
    rows = session.execute(
        select(MaterialLot, Material)
        .join(Material, col(Material.id) == MaterialLot.material_id)
        .order_by(col(Material.code), col(MaterialLot.lot_number))
    )
    return [(lot, material) for lot, material in rows]


def get_lot(session: Session, lot_id: int) -> tuple[MaterialLot, Material]:
    row = session.execute(
        select(MaterialLot, Material)
        .join(Material, col(Material.id) == MaterialLot.material_id)
        .where(MaterialLot.id == lot_id)
    ).first()
    if row is None:
        raise NotFound(f"No material lot has id {lot_id}.")
    return row[0], row[1]


def list_equipment(session: Session) -> list[Equipment]:
    return list(session.execute(select(Equipment).order_by(col(Equipment.code))).scalars())


def usable_lots(
    session: Session, lot_ids: Iterable[int], *, at: datetime
) -> list[tuple[MaterialLot, Material]]:
    """The lots, each checked to exist, to be QC released and not to be expired at `at` (one
    query). The lots are held FOR SHARE until commit and read afresh (ADR 0024): a rejection
    committed meanwhile is seen, and steps sharing a lot never wait for one another."""
    wanted = sorted(set(lot_ids))
    if not wanted:
        return []
    rows = session.execute(
        select(MaterialLot, Material)
        .join(Material, col(Material.id) == MaterialLot.material_id)
        .where(col(MaterialLot.id).in_(wanted))
        .order_by(col(MaterialLot.id))
        .with_for_update(read=True, of=MaterialLot)
        .execution_options(populate_existing=True)
    ).all()
    found = {lot.id: (lot, material) for lot, material in rows}
    gated = gmp_settings.qualification_gating(session).lots
    for lot_id in wanted:
        if lot_id not in found:
            raise NotFound(f"No material lot has id {lot_id}.")
        lot, material = found[lot_id]
        if gated and lot.status != LotStatus.RELEASED:
            raise LotNotReleased(
                f"Lot {lot.lot_number} of {material.name} is {lot.status}, not released by QC; "
                "it cannot be used."
            )
        if lot.expires_at <= at:
            raise ExpiredLot(
                f"Lot {lot.lot_number} of {material.name} expired on "
                f"{lot.expires_at:%Y-%m-%d}; it cannot be used."
            )
    return [found[lot_id] for lot_id in wanted]


def usable_equipment(
    session: Session, equipment_ids: Iterable[int], *, at: datetime
) -> list[Equipment]:
    """The equipment, each checked to exist, to be in service and calibrated and qualified at
    `at` (one query), held FOR SHARE until commit like the lots."""
    wanted = sorted(set(equipment_ids))
    if not wanted:
        return []
    found = {
        e.id: e
        for e in session.execute(
            select(Equipment)
            .where(col(Equipment.id).in_(wanted))
            .order_by(col(Equipment.id))
            .with_for_update(read=True)
            .execution_options(populate_existing=True)
        ).scalars()
    }
    gated = gmp_settings.qualification_gating(session).equipment
    for equipment_id in wanted:
        equipment = found.get(equipment_id)
        if equipment is None:
            raise NotFound(f"No equipment has id {equipment_id}.")
        if not equipment.in_service:
            raise EquipmentOutOfService(
                f"{equipment.name} ({equipment.code}) is out of service; it cannot be used."
            )
        if gated and (why := _overdue(equipment, at)) is not None:
            raise EquipmentOverdue(
                f"{equipment.name} ({equipment.code}) {why}; it cannot be used until QA "
                "records its calibration and qualification."
            )
    return [found[equipment_id] for equipment_id in wanted]
