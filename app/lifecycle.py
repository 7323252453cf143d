"""Lifecycles as data (CONVENTIONS 5): a transition table and the one function that moves."""

from collections.abc import Mapping
from dataclasses import dataclass, field
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
    # States left, besides their `transitions`, only back to the state the record came from (a
    # hold): state -> the states it may return to. Only `transition(..., returning=True)` uses it.
    returns: Mapping[S, frozenset[S]] = field(default_factory=dict)
    # The record's column that takes the time of each move (None: the record keeps no such time).
    stamp: str | None = None

    def allowed(self, current: S) -> frozenset[S]:
        return self.transitions[current]

    def check(self, current: S, target: S, *, label: str, returning: bool = False) -> None:
        """Refuse an illegal move, naming the current state and the allowed next ones."""
        table = self.returns if returning else self.transitions
        if target not in table.get(current, frozenset()):
            allowed = ", ".join(sorted(self.transitions[current])) or "none (final state)"
            back = " or back to the state it came from" if current in self.returns else ""
            raise InvalidState(
                f"{label} is {current.value}; it cannot become {target.value}. "
                f"Allowed next: {allowed}{back}."
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
    returning: bool = False,
) -> None:
    """Check, move and audit in one place; an illegal move raises, it is never skipped.

    `returning` moves back to the state the record came from, by the lifecycle's `returns`."""
    current = type(target)(record.status)
    lifecycle.check(current, target, label=label, returning=returning)
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
