"""Every table, imported in one place so the metadata alembic compares against is complete."""

from app.audit.models import AuditEvent
from app.auth.models import AuthToken, User, UserRole
from app.batches.models import Batch
from app.biopsies.models import Biopsy
from app.db import metadata
from app.identity.sequences import SequenceCounter
from app.patients.models import Patient
from app.vessels.models import Vessel

__all__ = [
    "AuditEvent",
    "AuthToken",
    "Batch",
    "Biopsy",
    "Patient",
    "SequenceCounter",
    "User",
    "UserRole",
    "Vessel",
    "metadata",
]
