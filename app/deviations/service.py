"""Deviations: opened by anyone (and automatically for every out-of-specification result),
investigated, closed by QA with an e-signature. An unresolved deviation holds its batch."""

from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth import service as auth
from app.auth.models import User
from app.batches import service as batches
from app.batches.models import Batch
from app.batches.service import BatchContext
from app.batches.states import FINAL, BatchStatus
from app.clock import utcnow
from app.config import Settings
from app.deviations.models import Deviation
from app.deviations.schemas import DeviationClose, DeviationCreate, DeviationPublic, DeviationUpdate
from app.deviations.states import (
    DEVIATION_LIFECYCLE,
    UNRESOLVED,
    DeviationKind,
    DeviationStatus,
)
from app.errors import InvalidRequest, InvalidState, NotFound
from app.identity.sequences import next_value
from app.lifecycle import transition
from app.signatures import service as signatures
from app.signatures.schemas import SignedRecord

INVESTIGATION_FIELDS = ("investigation", "root_cause", "capa")


def open_deviation(
    session: Session,
    *,
    actor: User,
    context: BatchContext,
    kind: DeviationKind,
    description: str,
    qc_result_id: int | None = None,
) -> Deviation:
    """Record a deviation on a locked batch and put the batch on hold (unless it already is, or
    is in a final state)."""
    now = utcnow()
    sequence = next_value(session, f"deviation:{now.year % 100:02d}")
    assert actor.id is not None and context.batch.id is not None
    deviation = Deviation(
        number=f"DEV{now.year % 100:02d}-{sequence:05d}",
        batch_id=context.batch.id,
        kind=kind.value,
        status=DeviationStatus.OPEN.value,
        description=description,
        qc_result_id=qc_result_id,
        opened_by=actor.id,
        opened_at=now,
    )
    session.add(deviation)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.DEVIATION_OPENED,
        entity_type=EntityType.DEVIATION,
        entity_id=deviation.id,
        coi=context.patient.coi,
        new={
            "number": deviation.number,
            "batch_id": deviation.batch_id,
            "kind": deviation.kind,
            "description": description,
            "qc_result_id": qc_result_id,
        },
    )
    status = BatchStatus(context.batch.status)
    if status is not BatchStatus.ON_HOLD and status not in FINAL:
        batches.hold(
            session,
            actor=actor,
            batch_id=context.batch.id,
            reason=f"Deviation {deviation.number} opened: {description}",
        )
    return deviation


def create(session: Session, *, actor: User, batch_id: int, data: DeviationCreate) -> Deviation:
    """A deviation opened by a person on batch `batch_id`."""
    context = batches.get(session, batch_id, lock=True)
    return open_deviation(
        session, actor=actor, context=context, kind=data.kind, description=data.description
    )


def _locked(session: Session, deviation_id: int) -> tuple[Deviation, BatchContext]:
    """The deviation, read again after its batch is locked (every deviation change locks the
    batch first, so changes to one deviation never interleave)."""
    found = session.get(Deviation, deviation_id)
    if found is None:
        raise NotFound(f"No deviation has id {deviation_id}.")
    context = batches.get(session, found.batch_id, lock=True)
    deviation = session.get(Deviation, deviation_id, populate_existing=True)
    assert deviation is not None
    return deviation, context


def _label(deviation: Deviation) -> str:
    return f"Deviation {deviation.number}"


def update(session: Session, *, actor: User, deviation_id: int, data: DeviationUpdate) -> Deviation:
    """Fill in the investigation; an open deviation becomes `investigating`."""
    deviation, context = _locked(session, deviation_id)
    if deviation.status == DeviationStatus.CLOSED:
        raise InvalidState(f"{_label(deviation)} is closed; its record can no longer change.")
    changes = data.model_dump(exclude_none=True)
    old = {field: getattr(deviation, field) for field in changes}
    for field, value in changes.items():
        setattr(deviation, field, value)
    session.add(deviation)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.DEVIATION_UPDATED,
        entity_type=EntityType.DEVIATION,
        entity_id=deviation.id,
        coi=context.patient.coi,
        old=old,
        new=changes,
    )
    if deviation.status == DeviationStatus.OPEN:
        transition(
            session,
            DEVIATION_LIFECYCLE,
            deviation,
            DeviationStatus.INVESTIGATING,
            actor=actor,
            coi=context.patient.coi,
            label=_label(deviation),
        )
    return deviation


def close(
    session: Session, settings: Settings, *, actor: User, deviation_id: int, data: DeviationClose
) -> Deviation:
    """QA closes a deviation whose investigation, root cause and CAPA are recorded, e-signed;
    closing the batch's last unresolved deviation lifts its hold."""
    deviation, context = _locked(session, deviation_id)
    signer = signatures.authenticate(
        session,
        settings,
        user=actor,
        password=data.password,
        meaning=data.meaning,
        comment=data.comment,
        record_type=SignedRecord.DEVIATION,
        record_id=deviation.id,
    )
    DEVIATION_LIFECYCLE.check(
        DeviationStatus(deviation.status), DeviationStatus.CLOSED, label=_label(deviation)
    )
    completed = {f: getattr(data, f) for f in INVESTIGATION_FIELDS if getattr(data, f) is not None}
    if completed:
        update(session, actor=actor, deviation_id=deviation_id, data=DeviationUpdate(**completed))
    missing = [f for f in INVESTIGATION_FIELDS if not getattr(deviation, f)]
    if missing:
        raise InvalidRequest(
            f"{_label(deviation)} cannot be closed before its {', '.join(missing)} is recorded."
        )
    deviation.closed_by = actor.id
    deviation.closed_at = utcnow()
    transition(
        session,
        DEVIATION_LIFECYCLE,
        deviation,
        DeviationStatus.CLOSED,
        actor=actor,
        coi=context.patient.coi,
        label=_label(deviation),
    )
    signatures.apply(
        session,
        signer,
        record_type=SignedRecord.DEVIATION,
        record_id=deviation.id or 0,
        content=content(deviation),
        coi=context.patient.coi,
    )
    if (
        context.batch.status == BatchStatus.ON_HOLD
        and context.batch.held_from is not None
        and not unresolved(session, context.batch.id or 0)
    ):
        batches.lift_hold(
            session,
            actor=actor,
            batch_id=context.batch.id or 0,
            reason=f"{_label(deviation)} closed; no deviation of the batch remains open",
        )
    return deviation


def unresolved(session: Session, batch_id: int) -> list[Deviation]:
    """The batch's deviations that are not closed."""
    return list(
        session.execute(
            select(Deviation).where(
                Deviation.batch_id == batch_id,
                col(Deviation.status).in_([s.value for s in UNRESOLVED]),
            )
        ).scalars()
    )


def content(deviation: Deviation) -> dict[str, Any]:
    """The canonical content of a deviation: what its closure signature covers (SIG-3)."""
    return {
        "record": "deviation",
        "id": deviation.id,
        "number": deviation.number,
        "batch_id": deviation.batch_id,
        "kind": deviation.kind,
        "status": deviation.status,
        "description": deviation.description,
        "qc_result_id": deviation.qc_result_id,
        "opened_by": deviation.opened_by,
        "opened_at": deviation.opened_at,
        "investigation": deviation.investigation,
        "root_cause": deviation.root_cause,
        "capa": deviation.capa,
        "closed_by": deviation.closed_by,
        "closed_at": deviation.closed_at,
    }


def find(
    session: Session, *, batch_id: int | None = None, unresolved_only: bool = False
) -> list[DeviationPublic]:
    """Deviations (of one batch, or all; optionally only unresolved), oldest first, with their
    signatures, in a fixed number of queries."""
    query = select(Deviation, Batch.batch_number).join(Batch, col(Batch.id) == Deviation.batch_id)
    if batch_id is not None:
        query = query.where(Deviation.batch_id == batch_id)
    if unresolved_only:
        query = query.where(col(Deviation.status).in_([s.value for s in UNRESOLVED]))
    rows = list(session.execute(query.order_by(col(Deviation.id))).all())
    ids = [deviation.id or 0 for deviation, _ in rows]
    signed = signatures.of_records(session, SignedRecord.DEVIATION, ids)
    people = auth.usernames(session, [u for d, _ in rows for u in (d.opened_by, d.closed_by)])
    return [
        DeviationPublic(
            id=deviation.id or 0,
            number=deviation.number,
            batch_id=deviation.batch_id,
            batch_number=batch_number,
            kind=DeviationKind(deviation.kind),
            status=DeviationStatus(deviation.status),
            description=deviation.description,
            qc_result_id=deviation.qc_result_id,
            opened_by=people[deviation.opened_by],
            opened_at=deviation.opened_at,
            investigation=deviation.investigation,
            root_cause=deviation.root_cause,
            capa=deviation.capa,
            closed_by=people.get(deviation.closed_by) if deviation.closed_by else None,
            closed_at=deviation.closed_at,
            signatures=[
                signatures.public(s, content(deviation)) for s in signed[deviation.id or 0]
            ],
        )
        for deviation, batch_number in rows
    ]
