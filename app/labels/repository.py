"""The queries that tie a product label's container flags to a dose (LBL-6).

A dose's number is its place among its biopsy's doses in vessel sequence order, counting every
dose ever made (infused or discarded ones too), so a number never moves to another bag."""

from sqlalchemy import select
from sqlmodel import Session, col

from app.biopsies.models import Biopsy
from app.vessels.models import Vessel


def dose_numbers(session: Session, biopsy_id: int) -> dict[int, int]:
    """Vessel id -> dose number (1, 2, ...) of every dose of the biopsy."""
    ids = session.execute(
        select(Vessel.id)
        .where(Vessel.biopsy_id == biopsy_id, col(Vessel.is_dose).is_(True))
        .order_by(col(Vessel.sequence))
    ).scalars()
    return {vessel_id: number for number, vessel_id in enumerate(ids, start=1)}


def dose_code(session: Session, din: str, number: int) -> str | None:
    """The vessel code of dose `number` of the biopsy with DIN `din`, if there is one."""
    return (
        session.execute(
            select(Vessel.code)
            .join(Biopsy, col(Biopsy.id) == Vessel.biopsy_id)
            .where(Biopsy.din == din, col(Vessel.is_dose).is_(True))
            .order_by(col(Vessel.sequence))
            .offset(number - 1)
            .limit(1)
        )
        .scalars()
        .first()
    )
