"""Vessel queries. A vessel's identity is read together with its biopsy, patient and batch."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from app.batches.models import Batch
from app.biopsies.models import Biopsy
from app.patients.models import Patient
from app.vessels.models import Vessel


@dataclass(frozen=True, slots=True)
class VesselIdentity:
    vessel: Vessel
    biopsy: Biopsy
    patient: Patient
    batch: Batch | None
    parent_code: str | None


def identity_by_code(session: Session, code: str, *, lock: bool = False) -> VesselIdentity | None:
    """The vessel with `code` and whose it is, in one query; None if no vessel has that code.

    With `lock`, the vessel row is locked until commit (PostgreSQL; SQLite serializes writers).
    """
    parent = aliased(Vessel)
    query = (
        select(Vessel, Biopsy, Patient, Batch, parent.code)
        .join(Biopsy, col(Biopsy.id) == Vessel.biopsy_id)
        .join(Patient, col(Patient.id) == Biopsy.patient_id)
        .outerjoin(Batch, col(Batch.id) == Vessel.batch_id)
        .outerjoin(parent, parent.id == Vessel.parent_id)
        .where(Vessel.code == code)
    )
    row = session.execute(query.with_for_update(of=Vessel) if lock else query).first()
    return None if row is None else VesselIdentity(*row)


def vessels_with_parent_codes(
    session: Session, *, biopsy_id: int
) -> list[tuple[Vessel, str | None]]:
    """Every vessel of a biopsy (hence of its batch) with its parent's code, in creation order."""
    parent = aliased(Vessel)
    rows = session.execute(
        select(Vessel, parent.code)
        .outerjoin(parent, parent.id == Vessel.parent_id)
        .where(Vessel.biopsy_id == biopsy_id)
        .order_by(col(Vessel.sequence))
    )
    return [(vessel, parent_code) for vessel, parent_code in rows]
