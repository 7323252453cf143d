"""Typed audit actions and entity types (CONVENTIONS 6): the vocabulary of the audit trail."""

from enum import StrEnum


class EntityType(StrEnum):
    PATIENT = "patient"
    BIOPSY = "biopsy"
    BATCH = "batch"
    VESSEL = "vessel"
    USER = "user"
    SPECIFICATION = "specification"


class AuditAction(StrEnum):
    USER_CREATED = "user.created"
    USER_ROLES_SET = "user.roles_set"
    USER_DEACTIVATED = "user.deactivated"
    USER_REACTIVATED = "user.reactivated"
    USER_LOCKED = "user.locked"
    USER_UNLOCKED = "user.unlocked"
    LOGIN = "auth.login"
    LOGIN_FAILED = "auth.login_failed"
    LOGOUT = "auth.logout"
    PATIENT_REGISTERED = "patient.registered"
    PATIENT_VOIDED = "patient.voided"
    BIOPSY_REGISTERED = "biopsy.registered"
    BIOPSY_RECEIVED = "biopsy.received"
    BIOPSY_RECEIPT_MISMATCH = "biopsy.receipt_identity_mismatch"
    BIOPSY_VOIDED = "biopsy.voided"
    BATCH_REGISTERED = "batch.registered"
    BATCH_STATUS_CHANGED = "batch.status_changed"
    VESSEL_CREATED = "vessel.created"
    VESSEL_STATUS_CHANGED = "vessel.status_changed"
    VESSEL_ASSIGNED = "vessel.assigned_to_batch"
    SCAN_OK = "scan.ok"
    SCAN_IDENTITY_MISMATCH = "scan.identity_mismatch"
    SCAN_INVALID_CODE = "scan.invalid_code"
    SCAN_UNKNOWN_CODE = "scan.unknown_code"
