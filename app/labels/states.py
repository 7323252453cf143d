"""The print job lifecycle (ADR 0012) as one table: every attempt is a move, audited."""

from enum import StrEnum

from app.audit.actions import AuditAction, EntityType
from app.lifecycle import Lifecycle


class PrintJobStatus(StrEnum):
    QUEUED = "queued"  # waiting for its (next) attempt
    SENT = "sent"  # the printer took every byte of the job
    FAILED = "failed"  # given up: a person checks the printer and prints again


J = PrintJobStatus
TRANSITIONS: dict[PrintJobStatus, frozenset[PrintJobStatus]] = {
    J.QUEUED: frozenset({J.QUEUED, J.SENT, J.FAILED}),  # queued -> queued: retried later
    J.SENT: frozenset(),
    J.FAILED: frozenset(),
}

PRINT_JOB_LIFECYCLE = Lifecycle(
    entity_type=EntityType.PRINT_JOB,
    action=AuditAction.PRINT_JOB_ATTEMPTED,
    transitions=TRANSITIONS,
)
