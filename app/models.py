"""Every table, imported in one place so the metadata alembic compares against is complete."""

from app.audit.models import AuditEvent, AuditHead
from app.auth.models import AuthToken, User, UserRole
from app.batches.models import Batch, BatchAlert
from app.biopsies.models import Biopsy
from app.clinic.models import Infusion, PlannedInfusion
from app.db import metadata
from app.deviations.models import Deviation
from app.identity.sequences import SequenceCounter
from app.labels.models import LabelPrint, LabelPrinter, LabelVoid, PrintAttempt, PrintJob
from app.materials.models import Equipment, Material, MaterialLot
from app.notifications.models import WebhookAttempt, WebhookDelivery
from app.patients.models import Patient
from app.qc.models import QcResult
from app.qualifications.models import Qualification
from app.release.models import PhysicianAcceptance, ReleaseDecision
from app.signatures.models import Signature
from app.specifications.models import Specification, SpecificationTest
from app.steps.models import Step, StepEquipment, StepInput, StepMaterial
from app.storage.models import CustodyEvent, Location
from app.vessels.models import Vessel

__all__ = [
    "AuditEvent",
    "AuditHead",
    "AuthToken",
    "Batch",
    "BatchAlert",
    "Biopsy",
    "CustodyEvent",
    "Deviation",
    "Equipment",
    "Infusion",
    "LabelPrint",
    "LabelPrinter",
    "LabelVoid",
    "Location",
    "Material",
    "MaterialLot",
    "Patient",
    "PhysicianAcceptance",
    "PlannedInfusion",
    "PrintAttempt",
    "PrintJob",
    "QcResult",
    "Qualification",
    "ReleaseDecision",
    "SequenceCounter",
    "Signature",
    "Specification",
    "SpecificationTest",
    "Step",
    "StepEquipment",
    "StepInput",
    "StepMaterial",
    "User",
    "UserRole",
    "Vessel",
    "WebhookAttempt",
    "WebhookDelivery",
    "metadata",
]
