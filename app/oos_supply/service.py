"""The record an out-of-specification supply needs (EU GMP Part IV §11.5, REL-7): the treating
physician's e-signed justification of an immediate significant hazard, and the notification of
the sponsor and of the competent authority (who, when, reference). Dispatch of a dose of a batch
with a failing result in force is refused until all three cover every such result."""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth import service as auth
from app.auth.models import User
from app.batches import service as batches
from app.batches.service import BatchContext
from app.batches.states import FINAL, BatchStatus
from app.clock import CLOCK_SKEW, as_utc, in_future
from app.config import Settings
from app.errors import InvalidRequest, InvalidState, OosSupplyNotRecorded, Told
from app.oos_supply.models import OosJustification, OosNotification
from app.oos_supply.schemas import (
    JustificationCreate,
    JustificationPublic,
    NotificationCreate,
    NotificationPublic,
    OosSupplyPublic,
    Recipient,
)
from app.qc import service as qc
from app.qc.evaluation import Outcome
from app.qc.models import QcResult
from app.signatures import service as signatures
from app.signatures.schemas import Meaning, SignedRecord

JUSTIFICATION = "the treating physician's justification of an immediate significant hazard"
NOTIFIED = {
    Recipient.SPONSOR: "the sponsor's notification",
    Recipient.AUTHORITY: "the competent authority's notification",
}


def failing(session: Session, batch_id: int) -> dict[str, QcResult]:
    """The batch's failing results in force, by test."""
    return {
        test: result
        for test, result in qc.current(qc.history(session, batch_id)).items()
        if result.outcome == Outcome.FAIL
    }


def _covers(tests_json: str, recorded_at: datetime, now_failing: dict[str, QcResult]) -> bool:
    """A record covers the failing results it names and was recorded after."""
    named = set(json.loads(tests_json))
    return all(
        test in named and as_utc(result.entered_at) <= as_utc(recorded_at)
        for test, result in now_failing.items()
    )


def _checked_time(
    session: Session, context: BatchContext, moment: datetime, what: str
) -> dict[str, QcResult]:
    """The failing results a record of `what` at `moment` covers: there must be some, the batch
    still supplied, and `moment` neither in the future nor before the latest of them."""
    status = BatchStatus(context.batch.status)
    if status in FINAL:
        raise InvalidState(f"Batch {context.batch.batch_number} is {status}; it is not supplied.")
    found = failing(session, context.batch.id or 0)
    if not found:
        raise InvalidState(
            f"Batch {context.batch.batch_number} has no out-of-specification result: there is "
            f"no {what} to record."
        )
    if in_future(moment):
        raise InvalidRequest(f"The time of the {what} is in the future.")
    latest = max(as_utc(r.entered_at) for r in found.values())
    if moment < latest - CLOCK_SKEW:
        raise InvalidRequest(
            Told(
                f"The time of the {what} is before the failing result it covers ({{latest:s}}).",
                latest=latest,
            )
        )
    return found


def justification_content(row: OosJustification) -> dict[str, Any]:
    """The canonical content of a justification: what its signature covers (SIG-3)."""
    return {
        "record": "oos_justification",
        "id": row.id,
        "batch_id": row.batch_id,
        "physician_name": row.physician_name,
        "hazard": row.hazard,
        "justified_at": row.justified_at,
        "out_of_specification_tests": json.loads(row.out_of_specification_tests),
        "recorded_by": row.recorded_by,
        "recorded_at": row.recorded_at,
    }


def record_justification(
    session: Session, settings: Settings, *, actor: User, batch_id: int, data: JustificationCreate
) -> OosJustification:
    """The treating physician's justification, e-signed `approved` by the recording clinician
    (SIG-1), on the locked batch (ADR 0011), audited."""
    context = batches.get(session, batch_id, lock=True)
    signer = signatures.authenticate(
        session,
        settings,
        user=actor,
        password=data.password,
        meaning=Meaning.APPROVED,
        comment=data.hazard,
        record_type=SignedRecord.OOS_JUSTIFICATION,
        record_id=None,
    )
    found = _checked_time(session, context, data.justified_at, "physician's justification")
    row = OosJustification(
        batch_id=batch_id,
        physician_name=data.physician_name,
        hazard=data.hazard,
        justified_at=data.justified_at,
        out_of_specification_tests=json.dumps(sorted(found)),
        recorded_by=actor.id or 0,
    )
    session.add(row)
    session.flush()
    signatures.apply(
        session,
        signer,
        record_type=SignedRecord.OOS_JUSTIFICATION,
        record_id=row.id or 0,
        content=justification_content(row),
        coi=context.patient.coi,
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.OOS_JUSTIFICATION_RECORDED,
        entity_type=EntityType.BATCH,
        entity_id=batch_id,
        coi=context.patient.coi,
        new={
            "justification_id": row.id,
            "physician_name": data.physician_name,
            "hazard": data.hazard,
            "justified_at": data.justified_at,
            "out_of_specification_tests": sorted(found),
        },
    )
    return row


def record_notification(
    session: Session, *, actor: User, batch_id: int, data: NotificationCreate
) -> OosNotification:
    """The sponsor or the authority told of the OOS supply (who, when, reference), audited."""
    context = batches.get(session, batch_id, lock=True)
    found = _checked_time(
        session, context, data.notified_at, f"{data.recipient.value} notification"
    )
    row = OosNotification(
        batch_id=batch_id,
        recipient=data.recipient.value,
        party=data.party,
        notified_at=data.notified_at,
        reference=data.reference,
        out_of_specification_tests=json.dumps(sorted(found)),
        recorded_by=actor.id or 0,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.OOS_NOTIFICATION_RECORDED,
        entity_type=EntityType.BATCH,
        entity_id=batch_id,
        coi=context.patient.coi,
        new={
            "notification_id": row.id,
            "recipient": data.recipient.value,
            "party": data.party,
            "notified_at": data.notified_at,
            "reference": data.reference,
            "out_of_specification_tests": sorted(found),
        },
    )
    return row


@dataclass(frozen=True)
class SupplyRecord:
    failing: dict[str, QcResult]
    justifications: list[tuple[OosJustification, Any, bool]]  # row, signature or None, counts
    notifications: list[tuple[OosNotification, bool]]  # row, counts

    @property
    def missing(self) -> list[str]:
        if not self.failing:
            return []
        missing = [] if any(c for _, _, c in self.justifications) else [JUSTIFICATION]
        for recipient, what in NOTIFIED.items():
            if not any(c for n, c in self.notifications if n.recipient == recipient.value):
                missing.append(what)
        return missing


def _rows(session: Session, model: Any, batch_id: int) -> Sequence[Any]:
    return (
        session.execute(select(model).where(model.batch_id == batch_id).order_by(col(model.id)))
        .scalars()
        .all()
    )


def supply_record(session: Session, batch_id: int) -> SupplyRecord:
    """The batch's failing results and what of the OOS supply record covers them (4 queries)."""
    now_failing = failing(session, batch_id)
    justified = list(_rows(session, OosJustification, batch_id))
    signed = signatures.of_records(
        session, SignedRecord.OOS_JUSTIFICATION, [r.id or 0 for r in justified]
    )
    justifications = []
    for row in justified:
        digest = signatures.record_hash(justification_content(row))
        valid = next(
            (
                s
                for s in signed[row.id or 0]
                if s.meaning == Meaning.APPROVED
                and s.user_id == row.recorded_by
                and s.record_hash == digest
            ),
            None,
        )
        first = signed[row.id or 0][0] if signed[row.id or 0] else None
        counts = valid is not None and _covers(
            row.out_of_specification_tests, row.recorded_at, now_failing
        )
        justifications.append((row, first, counts))
    notifications = [
        (row, _covers(row.out_of_specification_tests, row.recorded_at, now_failing))
        for row in _rows(session, OosNotification, batch_id)
    ]
    return SupplyRecord(now_failing, justifications, notifications)


def require_recorded(session: Session, *, batch_id: int, dose_code: str) -> None:
    """409 `oos_supply_not_recorded` when the batch has a failing result in force and its OOS
    supply record (justification, sponsor and authority notifications) does not cover it.
    Dispatch calls this with the batch locked, so what it reads cannot change under it."""
    found = supply_record(session, batch_id)
    missing = found.missing
    if not missing:
        return
    context = batches.get(session, batch_id)
    raise OosSupplyNotRecorded(
        f"Dose {dose_code} belongs to batch {context.batch.batch_number}, out of specification "
        f"({', '.join(sorted(found.failing))}); it is dispatched only with "
        f"{', '.join(missing)} recorded after these results (EU GMP Part IV §11.5)."
    )


def public(session: Session, batch_id: int) -> OosSupplyPublic:
    """The batch's OOS supply record, each entry saying whether it counts now."""
    context = batches.get(session, batch_id)
    found = supply_record(session, batch_id)
    people = auth.usernames(
        session,
        [r.recorded_by for r, _, _ in found.justifications]
        + [r.recorded_by for r, _ in found.notifications],
    )
    return OosSupplyPublic(
        batch_id=batch_id,
        batch_number=context.batch.batch_number,
        failing_tests=sorted(found.failing),
        out_of_specification=bool(found.failing),
        complete=not found.missing,
        missing=found.missing,
        justifications=[
            JustificationPublic(
                id=row.id or 0,
                batch_id=batch_id,
                physician_name=row.physician_name,
                hazard=row.hazard,
                justified_at=row.justified_at,
                out_of_specification_tests=json.loads(row.out_of_specification_tests),
                recorded_by=people[row.recorded_by],
                recorded_at=row.recorded_at,
                signature=(
                    signatures.public(signature, justification_content(row)) if signature else None
                ),
                counts=counts,
            )
            for row, signature, counts in found.justifications
        ],
        notifications=[
            NotificationPublic(
                id=row.id or 0,
                batch_id=batch_id,
                recipient=Recipient(row.recipient),
                party=row.party,
                notified_at=row.notified_at,
                reference=row.reference,
                out_of_specification_tests=json.loads(row.out_of_specification_tests),
                recorded_by=people[row.recorded_by],
                recorded_at=row.recorded_at,
                counts=counts,
            )
            for row, counts in found.notifications
        ],
    )
