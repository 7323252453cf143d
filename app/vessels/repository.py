"""Vessel queries. A vessel's identity is read together with its biopsy, patient and batch."""

from collections.abc import Iterable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from app.batches.models import Batch
from app.batches.repository import lock_batch
from app.biopsies.models import Biopsy
from app.errors import Conflict
from app.patients.models import Patient
from app.vessels.models import Vessel


@dataclass(frozen=True, slots=True)
class VesselIdentity:
    vessel: Vessel
    biopsy: Biopsy
    patient: Patient
    batch: Batch | None
    parent_code: str | None


_ENTITIES: dict[str, Any] = {"vessel": Vessel, "biopsy": Biopsy, "patient": Patient, "batch": Batch}


# The columns of each entity that a scan reads (`identity_values_by_code`): the vessel as
# VesselPublic shows it, what the expectation, the fitness and the batch summary check, and none
# of the patient's personal data. Each column a row carries costs CPU in the driver and in
# SQLAlchemy; cutting 61 columns to these took 13 % of a scan's Python calls (docs/performance.md,
# stop 23).
SCAN_READS: dict[str, tuple[str, ...]] = {
    "vessel": (
        "id", "code", "kind", "status", "batch_id", "passage", "location", "created_at",
        "is_dose", "cell_count", "volume_ml", "expires_at", "produced_by_step_id",
    ),
    "biopsy": ("id", "din", "received_at", "accepted", "voided_at"),
    "patient": ("id", "coi", "voided_at"),
    "batch": ("id", "batch_number", "biopsy_id", "status", "created_at"),
}  # fmt: skip


def _identity_queries() -> tuple[Select, Select]:
    """The identity of the vessel with the `code` parameter: its biopsy, patient, batch (if any)
    and its parent's code, as ORM entities and as the Core columns a scan reads, labelled
    `entity__column`. One join serves both."""
    tables: dict[str, Table] = {name: model.__table__ for name, model in _ENTITIES.items()}
    vessel, biopsy, patient, batch = tables.values()
    parent = vessel.alias("parent")
    joined = (
        vessel.join(biopsy, biopsy.c.id == vessel.c.biopsy_id)
        .join(patient, patient.c.id == biopsy.c.patient_id)
        .outerjoin(batch, batch.c.id == vessel.c.batch_id)
        .outerjoin(parent, parent.c.id == vessel.c.parent_id)
    )
    where = vessel.c.code == bindparam("code")
    parent_code = parent.c.code.label("parent_code")
    entities = select(Vessel, Biopsy, Patient, Batch, parent_code).select_from(joined).where(where)
    labelled = [
        tables[name].c[key].label(f"{name}__{key}")
        for name, keys in SCAN_READS.items()
        for key in keys
    ]
    values = select(*labelled, parent_code).select_from(joined).where(where)
    return entities, values


# Built once: this is the scan's query, and building it (aliases, joins) cost more CPU than
# running it.
_IDENTITY_BY_CODE, _IDENTITY_VALUES = _identity_queries()


class Columns(SimpleNamespace):
    """Some of one row's column values by attribute, as its entity has them (same names, same
    types): a read-only copy, not an entity. Nothing written to it reaches the database; reading
    a column it does not carry is an AttributeError."""


def identity_values_by_code(session: Session, code: str) -> VesselIdentity | None:
    """`identity_by_code` for a caller that only reads the identity (the scan): the same join on
    the connection, the `SCAN_READS` columns as `Columns` instead of ORM entities, which cost a
    scan about as much CPU again as the query itself (docs/performance.md, stop 22)."""
    row = session.connection().execute(_IDENTITY_VALUES, {"code": code}).first()
    if row is None:
        return None
    values: dict[str, dict[str, Any]] = {name: {} for name in _ENTITIES}
    for key, value in row._mapping.items():
        name, _, column = key.partition("__")
        if column:
            values[name][column] = value
    vessel, biopsy, patient, batch = (Columns(**values[name]) for name in _ENTITIES)
    return VesselIdentity(
        cast(Vessel, vessel),
        cast(Biopsy, biopsy),
        cast(Patient, patient),
        cast(Batch, batch) if batch.id is not None else None,
        row.parent_code,
    )


def identity_by_code(session: Session, code: str, *, lock: bool = False) -> VesselIdentity | None:
    """The vessel with `code` and whose it is, in one query; None if no vessel has that code.

    With `lock`, a write path starting from a vessel takes the locks in the one order (ADR 0011):
    found without a lock first, then its batch is locked, then the vessel, both read afresh, so
    every rule checked afterwards sees the latest committed state.
    """
    row = session.execute(_IDENTITY_BY_CODE, {"code": code}).first()
    if row is None:
        return None
    found = VesselIdentity(*row)
    if not lock:
        return found
    batch_id = found.vessel.batch_id
    batch = lock_batch(session, batch_id) if batch_id is not None else None
    (vessel,) = lock_vessels(session, [found.vessel.id or 0])
    if vessel.batch_id != batch_id:
        # A biopsy tube joined its new batch while we waited: locking that batch now would
        # break the order (vessel before batch), so the caller is asked to try again.
        raise Conflict(f"Vessel {code} was just assigned to a batch; try again.")
    return VesselIdentity(vessel, found.biopsy, found.patient, batch, found.parent_code)


def lock_vessels(session: Session, ids: Iterable[int]) -> list[Vessel]:
    """The vessels, locked until commit in id order (two writers of overlapping vessels never
    deadlock) and read afresh once locked. The caller holds their batch's lock already."""
    return list(
        session.execute(
            select(Vessel)
            .where(col(Vessel.id).in_(sorted(set(ids))))
            .order_by(col(Vessel.id))
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalars()
    )


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
