"""Batch registration from a received biopsy; reading a batch with what it derives from."""

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.audit.models import AuditEvent
from app.auth.models import User
from app.batches.models import Batch, BatchAlert
from app.batches.repository import lock_batch
from app.batches.schemas import BatchAlertPublic, BatchPublic, BatchSummary
from app.batches.states import BATCH_LIFECYCLE, BatchStatus
from app.biopsies import service as biopsies
from app.biopsies.models import Biopsy
from app.biopsies.schemas import BiopsyStatus
from app.clock import utcnow
from app.config import Settings
from app.db import add_unique
from app.deviations.models import Deviation
from app.deviations.states import UNRESOLVED
from app.errors import AlreadyRegistered, InvalidState, NotFound
from app.identity.codes import DIN
from app.identity.sequences import next_value
from app.lifecycle import transition
from app.patients.models import Patient
from app.specifications import service as specifications
from app.vessels import service as vessels
from app.vessels.models import Vessel
from app.vessels.repository import vessels_with_parent_codes
from app.vessels.states import VesselStatus

DOSE_DONE = frozenset({VesselStatus.INFUSED, VesselStatus.DISCARDED})
# The batch number printed on every label and page: B + 2-digit year + "-" + sequence.
BATCH_NUMBER = re.compile(r"B[0-9]{2}-[0-9]{5,}")


@dataclass(frozen=True, slots=True)
class BatchContext:
    """A batch with the records its identity comes from."""

    batch: Batch
    biopsy: Biopsy
    patient: Patient


def summary(context: BatchContext) -> BatchSummary:
    batch, biopsy, patient = context.batch, context.biopsy, context.patient
    assert batch.id is not None and patient.id is not None
    return BatchSummary(
        id=batch.id,
        batch_number=batch.batch_number,
        din=biopsy.din,
        din_check=DIN(biopsy.din).check,
        coi=patient.coi,
        status=BatchStatus(batch.status),
        patient_id=patient.id,
        biopsy_id=batch.biopsy_id,
        created_at=batch.created_at,
    )


def _contexts(session: Session, *where, limit: int | None = None) -> list[BatchContext]:
    query = (
        select(Batch, Biopsy, Patient)
        .join(Biopsy, col(Biopsy.id) == Batch.biopsy_id)
        .join(Patient, col(Patient.id) == Biopsy.patient_id)
        .where(*where)
        .order_by(col(Batch.id).desc())
        .limit(limit)
    )
    return [BatchContext(*row) for row in session.execute(query)]


def get(session: Session, batch_id: int, *, lock: bool = False) -> BatchContext:
    """The batch with its biopsy and patient; with `lock`, the batch row is locked until commit
    and read afresh (`repository.lock_batch`), the first lock of a write path."""
    if lock:
        lock_batch(session, batch_id)
    found = _contexts(session, Batch.id == batch_id)
    if not found:
        raise NotFound(f"No batch has id {batch_id}.")
    return found[0]


def by_number(session: Session, batch_number: str) -> BatchContext:
    """The batch whose number (B26-00008, as on its labels and pages) is `batch_number`."""
    found = _contexts(session, Batch.batch_number == batch_number)
    if not found:
        raise NotFound(f"No batch has number {batch_number}.")
    return found[0]


def by_din(session: Session, din: str) -> BatchContext:
    """The batch made from the biopsy with DIN `din` (a biopsy yields one batch)."""
    found = _contexts(session, Biopsy.din == din)
    if not found:
        raise NotFound(
            f"No batch is registered for DIN {din}: its biopsy may not be received or registered "
            "yet."
        )
    return found[0]


def find(
    session: Session,
    *,
    patient_id: int | None = None,
    statuses: frozenset[BatchStatus] | None = None,
    limit: int = 200,
) -> list[BatchContext]:
    """The newest batches first, optionally those of one patient or in some states."""
    where = [Patient.id == patient_id] if patient_id is not None else []
    if statuses is not None:
        where.append(col(Batch.status).in_([s.value for s in statuses]))
    return _contexts(session, *where, limit=limit)


def allowed_next(batch: Batch) -> list[BatchStatus]:
    """Where the batch may go next: its lifecycle's moves, and back where a hold came from."""
    status = BatchStatus(batch.status)
    held_from = {BatchStatus(batch.held_from)} if batch.held_from else set()
    back = BATCH_LIFECYCLE.returns.get(status, frozenset()) & held_from
    return sorted(BATCH_LIFECYCLE.allowed(status) | back)


def detail(session: Session, context: BatchContext) -> BatchPublic:
    """The batch with its vessels (a fixed number of queries however many vessels)."""
    rows = vessels_with_parent_codes(session, biopsy_id=context.biopsy.id or 0)
    batch_id = context.batch.id or 0
    return BatchPublic(
        **summary(context).model_dump(),
        allowed_next=allowed_next(context.batch),
        vessels=[vessels.public(vessel, parent_code) for vessel, parent_code in rows],
        specification_id=context.batch.specification_id,
        alerts=alerts(session, [batch_id])[batch_id],
    )


def register(session: Session, settings: Settings, *, actor: User, biopsy_id: int) -> BatchContext:
    """A batch from a received, accepted biopsy; its tube becomes the batch's first vessel."""
    biopsy, patient, tube = biopsies.get(session, biopsy_id, lock=True)
    status = biopsies.status_of(biopsy)
    if status is not BiopsyStatus.RECEIVED:
        raise InvalidState(
            f"Biopsy {biopsy.din} is {status.value}; only a biopsy received and accepted at the "
            "lab can start a batch."
        )
    already = AlreadyRegistered(
        f"Biopsy {biopsy.din} already has a batch; a biopsy yields one batch."
    )
    if session.execute(select(Batch.id).where(Batch.biopsy_id == biopsy.id)).first() is not None:
        raise already
    now = utcnow()
    sequence = next_value(session, f"batch:{settings.facility_id}:{now.year % 100:02d}")
    assert actor.id is not None and biopsy.id is not None
    batch = Batch(
        batch_number=f"B{now.year % 100:02d}-{sequence:05d}",
        biopsy_id=biopsy.id,
        status=BatchStatus.REGISTERED.value,
        created_by=actor.id,
        specification_id=specifications.in_force(session).id,
    )
    add_unique(session, batch, already)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.BATCH_REGISTERED,
        entity_type=EntityType.BATCH,
        entity_id=batch.id,
        coi=patient.coi,
        new={
            "batch_number": batch.batch_number,
            "din": biopsy.din,
            "status": batch.status,
            "specification_id": batch.specification_id,
        },
    )
    tube.batch_id = batch.id
    session.add(tube)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.VESSEL_ASSIGNED,
        entity_type=EntityType.VESSEL,
        entity_id=tube.id,
        coi=patient.coi,
        old={"batch_id": None},
        new={"batch_id": batch.id},
    )
    return BatchContext(batch=batch, biopsy=biopsy, patient=patient)


def _move(
    session: Session,
    context: BatchContext,
    target: BatchStatus,
    *,
    actor: User,
    reason: str,
    returning: bool = False,
) -> BatchContext:
    transition(
        session,
        BATCH_LIFECYCLE,
        context.batch,
        target,
        actor=actor,
        coi=context.patient.coi,
        label=f"Batch {context.batch.batch_number}",
        reason=reason,
        returning=returning,
    )
    return context


def destroy(session: Session, *, actor: User, batch_id: int, reason: str) -> BatchContext:
    """QA destroys a batch, with a reason; any state may be destroyed, none comes back."""
    context = get(session, batch_id, lock=True)
    return _move(session, context, BatchStatus.DESTROYED, actor=actor, reason=reason)


def hold(session: Session, *, actor: User, batch_id: int, reason: str) -> BatchContext:
    """Put a batch on hold (an open deviation): no step but discard, no release, no dispatch."""
    context = get(session, batch_id, lock=True)
    held_from = context.batch.status
    _move(session, context, BatchStatus.ON_HOLD, actor=actor, reason=reason)
    context.batch.held_from = held_from
    session.add(context.batch)
    session.flush()
    return context


def lift_hold(session: Session, *, actor: User, batch_id: int, reason: str) -> BatchContext:
    """Return a held batch to the state it was held from."""
    context = get(session, batch_id, lock=True)
    if context.batch.status != BatchStatus.ON_HOLD or context.batch.held_from is None:
        raise InvalidState(
            f"Batch {context.batch.batch_number} is {context.batch.status}, not on hold."
        )
    still_open = session.execute(
        select(Deviation.number).where(
            Deviation.batch_id == batch_id,
            col(Deviation.status).in_([s.value for s in UNRESOLVED]),
        )
    ).scalars()
    if numbers := list(still_open):
        raise InvalidState(
            f"Batch {context.batch.batch_number} stays on hold while deviation(s) "
            f"{', '.join(numbers)} are open; QA lifts it by closing them (e-signed)."
        )
    target = BatchStatus(context.batch.held_from)
    context.batch.held_from = None
    return _move(session, context, target, actor=actor, reason=reason, returning=True)


def issue(session: Session, *, actor: User, batch_id: int, dose_code: str) -> None:
    """A released (or conditionally released) batch is issued with its first dose dispatched."""
    context = get(session, batch_id, lock=True)
    _move(session, context, BatchStatus.ISSUED, actor=actor, reason=f"dose {dose_code} dispatched")


def complete_if_done(session: Session, *, actor: User, batch_id: int) -> None:
    """An issued batch is completed once every dose is infused or disposed (DESIGN §4)."""
    context = get(session, batch_id, lock=True)
    if context.batch.status != BatchStatus.ISSUED:
        return
    doses = session.execute(
        select(Vessel.status).where(Vessel.batch_id == batch_id, col(Vessel.is_dose).is_(True))
    ).scalars()
    if all(VesselStatus(status) in DOSE_DONE for status in doses):
        _move(
            session,
            context,
            BatchStatus.COMPLETED,
            actor=actor,
            reason="every dose infused or disposed",
        )


def raise_alert(
    session: Session,
    *,
    actor: User,
    context: BatchContext,
    kind: str,
    message: str,
    qc_result_id: int | None = None,
) -> BatchAlert:
    """An alert on the batch, shown on the batch and the clinic's board, and audited (REL-2)."""
    assert context.batch.id is not None
    alert = BatchAlert(
        batch_id=context.batch.id, kind=kind, message=message, qc_result_id=qc_result_id
    )
    session.add(alert)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.BATCH_ALERT_RAISED,
        entity_type=EntityType.BATCH,
        entity_id=context.batch.id,
        coi=context.patient.coi,
        new={"alert_id": alert.id, "kind": kind, "message": message, "qc_result_id": qc_result_id},
    )
    return alert


def alerts(session: Session, batch_ids: list[int]) -> dict[int, list[BatchAlertPublic]]:
    """The alerts of many batches, oldest first, in one query."""
    found: dict[int, list[BatchAlertPublic]] = {batch_id: [] for batch_id in batch_ids}
    if not batch_ids:
        return found
    rows = session.execute(
        select(BatchAlert)
        .where(col(BatchAlert.batch_id).in_(batch_ids))
        .order_by(col(BatchAlert.id))
    ).scalars()
    for alert in rows:
        found[alert.batch_id].append(
            BatchAlertPublic(
                id=alert.id or 0,
                kind=alert.kind,
                message=alert.message,
                qc_result_id=alert.qc_result_id,
                raised_at=alert.raised_at,
            )
        )
    return found


def trail(session: Session, context: BatchContext) -> list[AuditEvent]:
    """Every audit event about the batch, its biopsy and its vessels, oldest first (AUD-5)."""
    vessel_ids = [
        v.id for v, _ in vessels_with_parent_codes(session, biopsy_id=context.biopsy.id or 0)
    ]
    return list(
        audit.events_of_entities(
            session,
            {
                EntityType.BATCH: [context.batch.id or 0],
                EntityType.BIOPSY: [context.biopsy.id or 0],
                EntityType.VESSEL: [vessel_id for vessel_id in vessel_ids if vessel_id is not None],
            },
        )
    )
