"""Lifecycles as data (CONVENTIONS 5): a transition table and the one function that moves."""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from sqlmodel import Session

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.clock import utcnow
from app.errors import InvalidState

S = TypeVar("S", bound=StrEnum)


class HasStatus(Protocol):
    id: int | None
    status: str


@dataclass(frozen=True)
class Lifecycle(Generic[S]):
    """The allowed moves of one kind of record."""

    entity_type: EntityType
    action: AuditAction
    transitions: Mapping[S, frozenset[S]]
    # The record's column that takes the time of each move (None: the record keeps no such time).
    stamp: str | None = None

    def allowed(self, current: S) -> frozenset[S]:
        return self.transitions[current]

    def check(self, current: S, target: S, *, label: str) -> None:
        """Refuse an illegal move, naming the current state and the allowed next ones."""
        if target not in self.transitions[current]:
            allowed = ", ".join(sorted(self.transitions[current])) or "none (final state)"
            raise InvalidState(
                f"{label} is {current.value}; it cannot become {target.value}. "
                f"Allowed next: {allowed}."
            )


def transition(
    session: Session,
    lifecycle: Lifecycle[S],
    record: HasStatus,
    target: S,
    *,
    actor: Any,
    coi: str | None,
    label: str,
    reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Check, move and audit in one place; an illegal move raises, it is never skipped."""
    current = type(target)(record.status)
    lifecycle.check(current, target, label=label)
    record.status = target.value
    if lifecycle.stamp is not None:
        setattr(record, lifecycle.stamp, utcnow())
    session.add(record)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=lifecycle.action,
        entity_type=lifecycle.entity_type,
        entity_id=record.id,
        coi=coi,
        old={"status": current.value},
        new={"status": target.value, **(extra or {})},
        reason=reason,
    )
