"""The QC release status of a material lot (SEC-5, 21 CFR 1271.210(b)): received into
quarantine, released or rejected by QA with a reason. A released lot found bad goes back to
quarantine or is rejected; a rejected lot stays rejected."""

from enum import StrEnum

from app.audit.actions import AuditAction, EntityType
from app.lifecycle import Lifecycle


class LotStatus(StrEnum):
    QUARANTINE = "quarantine"
    RELEASED = "released"
    REJECTED = "rejected"


LOT_LIFECYCLE: Lifecycle[LotStatus] = Lifecycle(
    entity_type=EntityType.MATERIAL_LOT,
    action=AuditAction.MATERIAL_LOT_STATUS_CHANGED,
    transitions={
        LotStatus.QUARANTINE: frozenset({LotStatus.RELEASED, LotStatus.REJECTED}),
        LotStatus.RELEASED: frozenset({LotStatus.QUARANTINE, LotStatus.REJECTED}),
        LotStatus.REJECTED: frozenset(),
    },
)
