"""The vessel lifecycle (DESIGN §4) as one table; doses travel further than other vessels."""

from enum import StrEnum

from app.audit.actions import AuditAction, EntityType
from app.lifecycle import Lifecycle


class VesselKind(StrEnum):
    BIOPSY_TUBE = "biopsy_tube"
    TUBE = "tube"
    FLASK = "flask"
    CRYOVIAL = "cryovial"
    BAG = "bag"
    QC_SAMPLE = "qc_sample"


class VesselStatus(StrEnum):
    ACTIVE = "active"
    CONSUMED = "consumed"
    DISCARDED = "discarded"
    FROZEN = "frozen"
    THAWED = "thawed"
    DISPATCHED = "dispatched"
    RECEIVED = "received"
    INFUSED = "infused"


V = VesselStatus
TRANSITIONS: dict[VesselStatus, frozenset[VesselStatus]] = {
    V.ACTIVE: frozenset({V.CONSUMED, V.DISCARDED, V.FROZEN, V.DISPATCHED}),
    V.FROZEN: frozenset({V.THAWED, V.DISCARDED, V.DISPATCHED}),
    V.THAWED: frozenset({V.CONSUMED, V.DISCARDED}),
    V.DISPATCHED: frozenset({V.RECEIVED, V.DISCARDED}),
    V.RECEIVED: frozenset({V.INFUSED, V.DISCARDED}),
    V.CONSUMED: frozenset(),
    V.DISCARDED: frozenset(),
    V.INFUSED: frozenset(),
}

# A vessel in these statuses no longer exists as a container: it moves no more and needs no label.
NO_LONGER_IN_USE = frozenset({V.CONSUMED, V.DISCARDED, V.INFUSED})

# Statuses in which a vessel can be the input of a processing step.
USABLE_AS_INPUT = frozenset({V.ACTIVE, V.THAWED})

VESSEL_LIFECYCLE = Lifecycle(
    entity_type=EntityType.VESSEL,
    action=AuditAction.VESSEL_STATUS_CHANGED,
    transitions=TRANSITIONS,
)
