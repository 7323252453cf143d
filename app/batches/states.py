"""The batch lifecycle (DESIGN §4) as one table."""

from enum import StrEnum

from app.audit.actions import AuditAction, EntityType
from app.lifecycle import Lifecycle


class BatchStatus(StrEnum):
    REGISTERED = "registered"
    ISOLATION = "isolation"
    EXPANSION = "expansion"
    HARVESTED = "harvested"
    QUARANTINE = "quarantine"
    RELEASED = "released"
    CONDITIONALLY_RELEASED = "conditionally_released"
    REJECTED = "rejected"
    ISSUED = "issued"
    COMPLETED = "completed"
    ON_HOLD = "on_hold"
    DESTROYED = "destroyed"


S = BatchStatus
FINAL = frozenset({S.REJECTED, S.COMPLETED, S.DESTROYED})
# Any non-final state may be put on hold (open deviation) and any state destroyed (QA).
HOLDABLE = frozenset(set(S) - FINAL - {S.ON_HOLD})
_HOLD_OR_DESTROY = frozenset({S.ON_HOLD, S.DESTROYED})

TRANSITIONS: dict[BatchStatus, frozenset[BatchStatus]] = {
    S.REGISTERED: frozenset({S.ISOLATION}) | _HOLD_OR_DESTROY,
    S.ISOLATION: frozenset({S.EXPANSION}) | _HOLD_OR_DESTROY,
    S.EXPANSION: frozenset({S.HARVESTED}) | _HOLD_OR_DESTROY,
    S.HARVESTED: frozenset({S.QUARANTINE}) | _HOLD_OR_DESTROY,
    S.QUARANTINE: frozenset({S.RELEASED, S.CONDITIONALLY_RELEASED, S.REJECTED}) | _HOLD_OR_DESTROY,
    S.RELEASED: frozenset({S.ISSUED}) | _HOLD_OR_DESTROY,
    S.CONDITIONALLY_RELEASED: frozenset({S.RELEASED, S.REJECTED, S.ISSUED}) | _HOLD_OR_DESTROY,
    S.ISSUED: frozenset({S.COMPLETED}) | _HOLD_OR_DESTROY,
    # A hold ends by QA's decision (rejection, destruction) or by lifting it (RETURNS): nothing
    # else moves a held batch, so a dispatch or a completion never undoes a hold.
    S.ON_HOLD: frozenset({S.REJECTED, S.DESTROYED}),
    S.REJECTED: frozenset({S.DESTROYED}),
    S.COMPLETED: frozenset(),
    S.DESTROYED: frozenset(),
}

# Lifting a hold returns the batch to the state it was held from (`Batch.held_from`).
RETURNS: dict[BatchStatus, frozenset[BatchStatus]] = {S.ON_HOLD: HOLDABLE}

BATCH_LIFECYCLE = Lifecycle(
    entity_type=EntityType.BATCH,
    action=AuditAction.BATCH_STATUS_CHANGED,
    transitions=TRANSITIONS,
    returns=RETURNS,
    stamp="status_changed_at",
)
