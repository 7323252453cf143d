"""QA's dispositions on the batch record (issue 12 item 1): which of hold, lift the hold and
destroy the lifecycle allows now (asked of `service.allowed_next` and the lifecycle's table,
never judged here), and the last one taken, in words, from the batch's audit trail."""

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.audit.schemas import AuditEventPublic
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches.states import BATCH_LIFECYCLE, BatchStatus

S = BatchStatus


def lift_allowed(status: BatchStatus, allowed: list[BatchStatus]) -> bool:
    """The batch may go back where its hold came from (the lifecycle's `returns`)."""
    return bool(set(allowed) & BATCH_LIFECYCLE.returns.get(status, frozenset()))


@dataclass(frozen=True)
class Act:
    """One disposition form: its address under /batches/{id}/, its words and its button."""

    path: str
    title: str
    explains: str
    button: str


HOLD = Act(
    "hold",
    "Put the batch on hold",
    "Nothing moves while it is held: no step but a discard, no release, no dispatch, no "
    "infusion. The hold stays until it is lifted here or the batch's last open deviation is "
    "closed.",
    "Hold batch",
)
LIFT = Act(
    "lift-hold",
    "Lift the hold",
    "The batch goes back to the state it was held from. While a deviation of the batch is "
    "open the hold stays: closing the last one (e-signed) lifts it.",
    "Lift hold",
)
DESTROY = Act(
    "destroy",
    "Destroy the batch",
    "Final: a destroyed batch never comes back, and none of its doses may be used.",
    "Destroy batch",
)


def acts(principal: Principal, status: BatchStatus, allowed: list[BatchStatus]) -> list[Act]:
    """The dispositions this person may take now: QA's (BATCH_DESTROY), each only where the
    batch's lifecycle allows its move."""
    if Permission.BATCH_DESTROY not in principal.permissions:
        return []
    offered = [
        (HOLD, S.ON_HOLD in allowed),
        (LIFT, lift_allowed(status, allowed)),
        (DESTROY, S.DESTROYED in allowed),
    ]
    return [act for act, allowed_now in offered if allowed_now]


@dataclass(frozen=True)
class Disposition:
    """The batch's last move when it was a disposition, for the banner on the record."""

    headline: str  # ON HOLD, HOLD LIFTED, DESTROYED
    tone: str  # bad, ok, ended (always with the headline's words)
    by: str
    at: datetime
    reason: str | None
    back_to: str | None  # the state a lifted hold returned to


def last_disposition(session: Session, batch_id: int) -> Disposition | None:
    """Who put the batch on hold, lifted its hold or destroyed it, when and why: its last
    status change, as the audit trail recorded it (None when that was another move)."""
    moves = [
        AuditEventPublic.from_event(e)
        for e in audit.events(session, entity_type=EntityType.BATCH, entity_id=batch_id, limit=None)
        if e.action == AuditAction.BATCH_STATUS_CHANGED
    ]
    if not moves:
        return None
    last = moves[-1]
    before = (last.old_values or {}).get("status")
    after = (last.new_values or {}).get("status")
    if after == S.ON_HOLD:
        headline, tone, back_to = "ON HOLD", "bad", None
    elif after == S.DESTROYED:
        headline, tone, back_to = "DESTROYED", "ended", None
    elif before == S.ON_HOLD and after != S.REJECTED:
        headline, tone, back_to = "HOLD LIFTED", "ok", str(after).replace("_", " ")
    else:
        return None
    return Disposition(headline, tone, last.actor, last.occurred_at, last.reason, back_to)
