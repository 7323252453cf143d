"""Every table, imported in one place so the metadata alembic compares against is complete."""

from app.audit.models import AuditEvent, AuditHead
from app.audit_review.models import AuditReview
from app.auth.models import AuthToken, User, UserRole
from app.batches.models import Batch, BatchAlert
from app.biopsies.models import Biopsy
from app.clinic.models import Infusion, PlannedInfusion
from app.db import metadata
from app.deviations.models import Deviation
from app.gmp_settings.models import GmpSetting
from app.identity.sequences import SequenceCounter
from app.labels.models import LabelPrint, LabelPrinter, LabelVoid, PrintAttempt, PrintJob
from app.materials.models import Equipment, Material, MaterialLot
from app.notifications.models import WebhookAttempt, WebhookDelivery
from app.oos_supply.models import OosJustification, OosNotification
from app.patients.models import Patient
from app.qc.models import QcResult
from app.qualifications.models import Qualification
from app.release.models import PhysicianAcceptance, ReleaseDecision
from app.signatures.models import Signature
from app.specifications.models import Specification, SpecificationTest
from app.steps.models import Step, StepEquipment, StepInput, StepMaterial
from app.storage.models import CustodyEvent, Location
from app.validation.models import ValidationReport
from app.vessels.models import Vessel

__all__ = [
    "AuditEvent",
    "AuditHead",
    "AuditReview",
    "AuthToken",
    "Batch",
    "BatchAlert",
    "Biopsy",
    "CustodyEvent",
    "Deviation",
    "Equipment",
    "GmpSetting",
    "Infusion",
    "LabelPrint",
    "LabelPrinter",
    "LabelVoid",
    "Location",
    "Material",
    "MaterialLot",
    "OosJustification",
    "OosNotification",
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
    "ValidationReport",
    "Vessel",
    "WebhookAttempt",
    "WebhookDelivery",
    "metadata",
]
