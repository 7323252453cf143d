"""Roles, permissions and the one table that maps them (CONVENTIONS 4).

Every route declares exactly one permission (or is public); tests/auth/test_permissions.py walks
every route for every role against this table.
"""

from enum import StrEnum


class Role(StrEnum):
    TECHNICIAN = "technician"
    QA = "qa"
    CLINICIAN = "clinician"
    ADMIN = "admin"


class Permission(StrEnum):
    USERS_MANAGE = "users.manage"
    PATIENT_REGISTER = "patient.register"
    PATIENT_READ = "patient.read"
    PATIENT_VOID = "patient.void"
    BIOPSY_REGISTER = "biopsy.register"
    BIOPSY_RECEIVE = "biopsy.receive"
    BIOPSY_VOID = "biopsy.void"
    BATCH_REGISTER = "batch.register"
    BATCH_READ = "batch.read"
    SCAN = "scan"
    STEP_RECORD = "step.record"
    BATCH_DESTROY = "batch.destroy"  # also hold and lift a hold: QA dispositions
    CATALOGUE_READ = "catalogue.read"
    CATALOGUE_MANAGE = "catalogue.manage"
    CUSTODY_RECORD = "custody.record"  # the route; the event decides which of the three below
    CUSTODY_MOVE = "custody.move"
    CUSTODY_DISPATCH = "custody.dispatch"
    CUSTODY_RECEIVE = "custody.receive"
    SPECIFICATION_MANAGE = "specification.manage"  # new versions, e-signed by QA (QC-1)
    QC_ENTER = "qc.enter"
    QC_REVIEW = "qc.review"  # the second-person check of a result (Annex 11 §6)
    DEVIATION_OPEN = "deviation.open"
    DEVIATION_INVESTIGATE = "deviation.investigate"
    DEVIATION_CLOSE = "deviation.close"
    BATCH_RELEASE = "batch.release"
    CERTIFICATE_READ = "certificate.read"
    PHYSICIAN_ACCEPTANCE = "physician_acceptance.record"
    LABEL_PRINT = "label.print"  # print a label (POST): logged, a reprint with its reason (LBL-5)
    LABEL_VOID = "label.void"
    PRINT_JOBS_READ = "print_jobs.read"  # the printers' queue: what was sent, what is stuck
    CLINIC_BOARD = "clinic.board"  # the readiness board and infusion records
    INFUSION_VERIFY = "infusion.verify"
    INFUSION_RECORD = "infusion.record"
    INFUSION_PLAN = "infusion.plan"
    TRACE_REPORT = "trace.report"
    WEBHOOKS_READ = "webhooks.read"
    SIGN_IN_REPORT = "sign_in.report"  # failed sign-ins and locks (SEC-4, 11.300(d))
    QUALIFICATION_READ = "qualification.read"  # who is qualified for what, until when (SEC-5)
    QUALIFICATION_GRANT = "qualification.grant"  # grant and revoke people's qualifications
    LOT_DISPOSITION = "lot.disposition"  # QC release status of material lots (SEC-5)
    EQUIPMENT_QUALIFY = "equipment.qualify"  # calibration and qualification due dates (SEC-5)
    AUDIT_READ = "audit.read"  # the trail of records of no patient (users, logins)
    PATIENT_AUDIT_READ = "audit.read_patient"  # patients' trails, which hold personal data
    VALIDATION_SIGN = "validation.sign"  # QA e-signs an operational-qualification report (VAL-1)
    AUDIT_REVIEW = "audit.review"  # the periodic review of the trail, e-signed (AUD-8)
    OOS_NOTIFY = "oos.notify"  # sponsor and authority notified of an OOS supply (REL-7)


_LAB_READ = frozenset(
    {Permission.PATIENT_READ, Permission.BATCH_READ, Permission.SCAN, Permission.LABEL_PRINT}
)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.TECHNICIAN: _LAB_READ
    | {
        Permission.BIOPSY_RECEIVE,
        Permission.BATCH_REGISTER,
        Permission.STEP_RECORD,
        Permission.CATALOGUE_READ,
        Permission.CUSTODY_RECORD,
        Permission.CUSTODY_MOVE,
        Permission.CUSTODY_DISPATCH,
        Permission.QC_ENTER,
        Permission.QC_REVIEW,
        Permission.DEVIATION_OPEN,
        Permission.DEVIATION_INVESTIGATE,
        Permission.LABEL_VOID,
        Permission.PRINT_JOBS_READ,
        Permission.QUALIFICATION_READ,
    },
    Role.QA: _LAB_READ
    | {
        Permission.AUDIT_READ,
        Permission.SIGN_IN_REPORT,
        Permission.PATIENT_AUDIT_READ,
        Permission.PATIENT_VOID,
        Permission.BIOPSY_VOID,
        Permission.BATCH_DESTROY,
        Permission.CATALOGUE_READ,
        Permission.SPECIFICATION_MANAGE,
        Permission.QC_REVIEW,
        Permission.DEVIATION_OPEN,
        Permission.DEVIATION_INVESTIGATE,
        Permission.DEVIATION_CLOSE,
        Permission.BATCH_RELEASE,
        Permission.CERTIFICATE_READ,
        Permission.LABEL_VOID,
        Permission.CLINIC_BOARD,
        Permission.TRACE_REPORT,
        Permission.WEBHOOKS_READ,
        Permission.VALIDATION_SIGN,
        Permission.AUDIT_REVIEW,
        Permission.OOS_NOTIFY,
        Permission.QUALIFICATION_READ,
        Permission.QUALIFICATION_GRANT,
        Permission.LOT_DISPOSITION,
        Permission.EQUIPMENT_QUALIFY,
    },
    Role.CLINICIAN: _LAB_READ
    | {
        Permission.PATIENT_REGISTER,
        Permission.BIOPSY_REGISTER,
        Permission.CUSTODY_RECORD,
        Permission.CUSTODY_RECEIVE,
        Permission.DEVIATION_OPEN,
        Permission.CERTIFICATE_READ,
        Permission.PHYSICIAN_ACCEPTANCE,
        Permission.CLINIC_BOARD,
        Permission.INFUSION_VERIFY,
        Permission.INFUSION_RECORD,
        Permission.INFUSION_PLAN,
        Permission.TRACE_REPORT,
        Permission.QUALIFICATION_READ,
    },
    # Admin manages accounts and reads the audit trail; it grants no patient data by itself.
    Role.ADMIN: frozenset(
        {
            Permission.USERS_MANAGE,
            Permission.AUDIT_READ,
            Permission.SIGN_IN_REPORT,
            Permission.CATALOGUE_READ,
            Permission.CATALOGUE_MANAGE,
            Permission.WEBHOOKS_READ,
            Permission.PRINT_JOBS_READ,
            Permission.QUALIFICATION_READ,
        }
    ),
}


# Separation of duties (SEC-2): who administers accounts never releases, signs or infuses.
INCOMPATIBLE_ROLES: frozenset[frozenset[Role]] = frozenset(
    {frozenset({Role.ADMIN, Role.QA}), frozenset({Role.ADMIN, Role.CLINICIAN})}
)


def incompatible(roles: "set[Role] | frozenset[Role] | list[Role]") -> list[frozenset[Role]]:
    """The pairs of `roles` that one person may never hold together (SEC-2)."""
    held = set(roles)
    return sorted((pair for pair in INCOMPATIBLE_ROLES if pair <= held), key=sorted)


def permissions_of(roles: "set[Role] | frozenset[Role] | list[Role]") -> frozenset[Permission]:
    """Everything a user holding `roles` may do."""
    granted: frozenset[Permission] = frozenset()
    for role in roles:
        granted |= ROLE_PERMISSIONS[role]
    return granted
