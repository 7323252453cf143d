"""The deviation lifecycle as one table: open -> investigating -> closed (QA, e-signed)."""

from enum import StrEnum

from app.audit.actions import AuditAction, EntityType
from app.lifecycle import Lifecycle


class DeviationStatus(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    CLOSED = "closed"


class DeviationKind(StrEnum):
    OUT_OF_SPECIFICATION = "oos"
    PROCESS = "process"
    TEMPERATURE = "temperature"
    EQUIPMENT = "equipment"
    MATERIAL = "material"
    OTHER = "other"


D = DeviationStatus
DEVIATION_LIFECYCLE = Lifecycle(
    entity_type=EntityType.DEVIATION,
    action=AuditAction.DEVIATION_STATUS_CHANGED,
    transitions={
        D.OPEN: frozenset({D.INVESTIGATING, D.CLOSED}),
        D.INVESTIGATING: frozenset({D.CLOSED}),
        D.CLOSED: frozenset(),
    },
)
UNRESOLVED = frozenset({D.OPEN, D.INVESTIGATING})
