"""Voiding a wrong registration (COI-1): identity records are never edited, only voided."""

from typing import Protocol

from sqlmodel import Session

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth.models import User
from app.clock import utcnow
from app.errors import InvalidState


class Voidable(Protocol):
    id: int | None
    voided_at: object
    voided_by: int | None
    void_reason: str | None


def void(
    session: Session,
    record: Voidable,
    *,
    actor: User,
    action: AuditAction,
    entity_type: EntityType,
    coi: str,
    label: str,
    reason: str,
) -> None:
    """Mark `record` voided with who, when and why, and audit it in the patient's chain."""
    if record.voided_at is not None:
        raise InvalidState(f"{label} is already voided.")
    record.voided_at = utcnow()
    record.voided_by = actor.id
    record.void_reason = reason
    session.add(record)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=record.id,
        coi=coi,
        old={"voided": False},
        new={"voided": True},
        reason=reason,
    )
