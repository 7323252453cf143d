"""Traceability both ways (COI-7, 21 CFR 1271.290): patient -> every vessel and dose, any vessel
-> its ancestry and patient, material lot -> every batch, vessel and dose made with it.

Each answer is a fixed number of SQL round trips however large the tree, and reads through
indexes only what belongs to it, however large the database: the graph walks are recursive CTEs
over `vessel.parent_id` and the inputs of each vessel's producing step."""

from typing import Any

from sqlalchemy import case, false, literal, select, true, union_all
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from app.batches import service as batches
from app.batches.models import Batch
from app.biopsies.models import Biopsy
from app.errors import NotFound
from app.identity.codes import parse_vessel_code
from app.materials import service as materials
from app.patients.models import Patient
from app.steps.models import Step, StepInput, StepMaterial
from app.steps.repository import step_views
from app.vessels import service as vessels
from app.vessels.models import Vessel
from app.vessels.repository import identity_by_code, vessels_with_parent_codes


def _hops():
    """Two rows, one per kind of edge from a vessel to where it came from: its recorded parent
    (by_step false) and the inputs of the step that made it (by_step true).

    Each level of a walk joins its vessels to these rows once, so every edge is followed through
    its own index (vessel.parent_id, step_input, vessel.produced_by_step_id). A union of the two
    kinds of edge cannot be used: PostgreSQL does not push the walk's join into it and would read
    every vessel at every level, and the walk may name itself only once per level."""
    return union_all(select(false().label("by_step")), select(true())).subquery("hop")


def ancestors(session: Session, vessel_id: int) -> list[int]:
    """Every vessel `vessel_id` came from, in one recursive query."""
    hop, vessel = _hops(), aliased(Vessel)
    tree = select(literal(vessel_id).label("id")).cte("ancestry", recursive=True)
    parent = case((hop.c.by_step, StepInput.vessel_id), else_=vessel.parent_id)
    tree = tree.union(
        select(parent)
        .select_from(tree)
        .join(vessel, vessel.id == tree.c.id)
        .join(hop, true())
        .outerjoin(StepInput, hop.c.by_step & (StepInput.step_id == vessel.produced_by_step_id))
        .where(parent.is_not(None))
    )
    return [row for row in session.execute(select(tree.c.id)).scalars() if row != vessel_id]


def descendants_of(session: Session, seed_ids: list[int]) -> list[int]:
    """Every vessel made (directly or not) from the seeds, seeds included, in one query."""
    if not seed_ids:
        return []
    hop, by_parent, by_step = _hops(), aliased(Vessel), aliased(Vessel)
    seeds = select(Vessel.id.label("id")).where(col(Vessel.id).in_(seed_ids))
    tree = seeds.cte("descent", recursive=True)
    child = case((hop.c.by_step, by_step.id), else_=by_parent.id)
    tree = tree.union(
        select(child)
        .select_from(tree)
        .join(hop, true())
        .outerjoin(by_parent, ~hop.c.by_step & (by_parent.parent_id == tree.c.id))
        .outerjoin(StepInput, hop.c.by_step & (StepInput.vessel_id == tree.c.id))
        .outerjoin(by_step, by_step.produced_by_step_id == StepInput.step_id)
        .where(child.is_not(None))
    )
    return list(session.execute(select(tree.c.id)).scalars())


def _vessel_rows(session: Session, ids: list[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    parent = select(Vessel.id, Vessel.code).subquery()
    rows = session.execute(
        select(Vessel, parent.c.code, Batch.batch_number)
        .outerjoin(parent, parent.c.id == Vessel.parent_id)
        .outerjoin(Batch, col(Batch.id) == Vessel.batch_id)
        .where(col(Vessel.id).in_(ids))
        .order_by(col(Vessel.id))
    )
    return [
        vessels.public(vessel, parent_code).model_dump() | {"batch_number": number}
        for vessel, parent_code, number in rows
    ]


def lineage(session: Session, batch_id: int) -> dict[str, Any]:
    """The vessel tree of a batch with the step that made each vessel (fixed queries)."""
    context = batches.get(session, batch_id)
    steps = step_views(session, Step.batch_id == batch_id)
    made_by = {out.code: step for step in steps for out in step.outputs}
    nodes = []
    for vessel, parent_code in vessels_with_parent_codes(session, biopsy_id=context.biopsy.id or 0):
        step = made_by.get(vessel.code)
        nodes.append(
            vessels.public(vessel, parent_code).model_dump()
            | {
                "made_by": None
                if step is None
                else {
                    "step_id": step.id,
                    "kind": step.kind,
                    "performed_at": step.performed_at,
                    "performed_by": step.performed_by,
                    "inputs": step.inputs,
                },
            }
        )
    return {"batch": batches.summary(context).model_dump(), "vessels": nodes, "steps": steps}


def vessel_trace(session: Session, code: str) -> dict[str, Any]:
    """A vessel back to its patient: identity, and every ancestor up to the biopsy tube."""
    parsed = parse_vessel_code(code).value
    found = identity_by_code(session, parsed)
    if found is None:
        raise NotFound(f"No vessel has code {parsed}.")
    patient = found.patient
    return {
        "vessel": vessels.public(found.vessel, found.parent_code).model_dump(),
        "ancestors": _vessel_rows(session, ancestors(session, found.vessel.id or 0)),
        "batch": None
        if found.batch is None
        else batches.summary(batches.BatchContext(found.batch, found.biopsy, patient)).model_dump(),
        "din": found.biopsy.din,
        "coi": patient.coi,
        "patient": {
            "id": patient.id,
            "mrn": patient.mrn,
            "coi": patient.coi,
            "family_name": patient.family_name,
            "given_name": patient.given_name,
            "birth_date": patient.birth_date,
        },
    }


def patient_trace(session: Session, patient_id: int) -> dict[str, Any]:
    """A patient forward to every biopsy, batch, vessel and dose (three queries)."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"No patient has id {patient_id}.")
    biopsy_rows = session.execute(
        select(Biopsy, Batch)
        .outerjoin(Batch, col(Batch.biopsy_id) == Biopsy.id)
        .where(Biopsy.patient_id == patient_id)
        .order_by(col(Biopsy.id))
    ).all()
    vessel_ids = list(
        session.execute(
            select(Vessel.id)
            .join(Biopsy, col(Biopsy.id) == Vessel.biopsy_id)
            .where(Biopsy.patient_id == patient_id)
        ).scalars()
    )
    all_vessels = _vessel_rows(session, vessel_ids)
    return {
        "patient": {"id": patient.id, "mrn": patient.mrn, "coi": patient.coi},
        "biopsies": [
            {
                "id": b.id,
                "din": b.din,
                "collected_at": b.collected_at,
                "batch": None
                if batch is None
                else {"id": batch.id, "batch_number": batch.batch_number, "status": batch.status},
            }
            for b, batch in biopsy_rows
        ],
        "vessels": all_vessels,
        "doses": [v for v in all_vessels if v["is_dose"]],
    }


def lot_recall(session: Session, lot_id: int) -> dict[str, Any]:
    """Every batch, step, vessel and dose that used lot `lot_id` (COI-7, recall): the vessels a
    step using the lot took or made, and everything made from them since (conservative: a recall
    would rather hold one vessel too many than miss one)."""
    lot, material = materials.get_lot(session, lot_id)
    step_rows = session.execute(
        select(Step.id, Step.kind, Step.performed_at, Batch.id, Batch.batch_number)
        .join(StepMaterial, col(StepMaterial.step_id) == Step.id)
        .join(Batch, col(Batch.id) == Step.batch_id)
        .where(StepMaterial.lot_id == lot_id)
        .order_by(col(Step.performed_at))
    ).all()
    step_ids = [row[0] for row in step_rows]
    touched = list(
        session.execute(
            select(StepInput.vessel_id).where(col(StepInput.step_id).in_(step_ids))
        ).scalars()
    ) + list(
        session.execute(
            select(Vessel.id).where(col(Vessel.produced_by_step_id).in_(step_ids))
        ).scalars()
    )
    affected = _vessel_rows(session, descendants_of(session, touched))
    batch_ids = {row[3]: row[4] for row in step_rows}
    return {
        "lot": materials.lot_public(lot, material).model_dump(),
        "batches": [{"id": i, "batch_number": n} for i, n in batch_ids.items()],
        "steps": [
            {"id": s, "kind": k, "performed_at": at, "batch_id": b} for s, k, at, b, _ in step_rows
        ],
        "vessels": affected,
        "doses": [v for v in affected if v["is_dose"]],
    }
