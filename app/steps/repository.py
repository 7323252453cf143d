"""Reading steps back with their inputs, outputs, lots and equipment: five queries for any number
of steps (no N+1, CONVENTIONS 8)."""

import json
from collections import defaultdict

from sqlalchemy import select
from sqlmodel import Session, col

from app.auth.models import User
from app.materials.models import Equipment, Material, MaterialLot
from app.steps.models import Step, StepEquipment, StepInput, StepMaterial
from app.steps.rules import StepKind
from app.steps.schemas import StepPublic
from app.vessels import service as vessels
from app.vessels.models import Vessel


def step_views(session: Session, *where, warnings: list[str] | None = None) -> list[StepPublic]:
    """Steps matching `where` (e.g. Step.batch_id == 3), oldest first, fully described."""
    rows = session.execute(
        select(Step, User.username)
        .join(User, col(User.id) == Step.performed_by)
        .where(*where)
        .order_by(col(Step.performed_at), col(Step.id))
    ).all()
    ids = [step.id for step, _ in rows]
    if not ids:
        return []
    inputs: dict[int, list[str]] = defaultdict(list)
    for step_id, code in session.execute(
        select(StepInput.step_id, Vessel.code)
        .join(Vessel, col(Vessel.id) == StepInput.vessel_id)
        .where(col(StepInput.step_id).in_(ids))
        .order_by(col(Vessel.sequence))
    ):
        inputs[step_id].append(code)
    parent = select(Vessel.id, Vessel.code).subquery()
    outputs: dict[int, list] = defaultdict(list)
    for vessel, parent_code in session.execute(
        select(Vessel, parent.c.code)
        .outerjoin(parent, parent.c.id == Vessel.parent_id)
        .where(col(Vessel.produced_by_step_id).in_(ids))
        .order_by(col(Vessel.sequence))
    ):
        outputs[vessel.produced_by_step_id].append(vessels.public(vessel, parent_code))
    lots: dict[int, list[dict]] = defaultdict(list)
    for use, lot, material in session.execute(
        select(StepMaterial, MaterialLot, Material)
        .join(MaterialLot, col(MaterialLot.id) == StepMaterial.lot_id)
        .join(Material, col(Material.id) == MaterialLot.material_id)
        .where(col(StepMaterial.step_id).in_(ids))
    ):
        lots[use.step_id].append(
            {"lot_id": lot.id, "lot_number": lot.lot_number, "material": material.name,
             "material_code": material.code, "expires_at": lot.expires_at,
             "quantity": use.quantity}
        )  # fmt: skip
    used: dict[int, list[dict]] = defaultdict(list)
    for step_id, equipment in session.execute(
        select(StepEquipment.step_id, Equipment)
        .join(Equipment, col(Equipment.id) == StepEquipment.equipment_id)
        .where(col(StepEquipment.step_id).in_(ids))
    ):
        used[step_id].append(
            {"equipment_id": equipment.id, "code": equipment.code, "name": equipment.name}
        )
    return [
        StepPublic(
            id=step.id or 0,
            batch_id=step.batch_id,
            kind=StepKind(step.kind),
            performed_at=step.performed_at,
            performed_by=username,
            recorded_at=step.recorded_at,
            late=step.late_reason is not None,
            late_reason=step.late_reason,
            measurements=json.loads(step.measurements),
            reason=step.reason,
            note=step.note,
            inputs=inputs[step.id or 0],
            outputs=outputs[step.id or 0],
            materials=lots[step.id or 0],
            equipment=used[step.id or 0],
            warnings=warnings or [],
        )
        for step, username in rows
    ]
