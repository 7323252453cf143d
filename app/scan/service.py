"""The scan: validate the code, find the vessel, check what the scanner expected (COI-4, COI-5).

Every scan is recorded in the audit trail, whatever its outcome: accepted scans in the patient's
chain, refused ones as the aftermath of the refusal.
"""

from functools import partial

from sqlmodel import Session

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth.models import User
from app.batches import service as batches
from app.errors import IdentityMismatch, InvalidCode, InvalidState, NotFound
from app.identity.codes import DIN, normalize, parse_din
from app.labels.scanned import scanned_vessel_code
from app.scan.schemas import ScanExpectation, ScanResult
from app.vessels import service as vessels
from app.vessels.repository import VesselIdentity, identity_by_code


def _refusal_record(actor: User, action: AuditAction, code: str, **facts: object):
    return partial(
        audit.record,
        actor=actor,
        action=action,
        entity_type=EntityType.VESSEL,
        entity_id=None,
        new={"code": normalize(code)[:40], **facts},
        coi=None,
    )


def _mismatches(found: VesselIdentity, expect: ScanExpectation, din: DIN | None) -> list[str]:
    problems = []
    batch = found.batch
    if expect.batch_id is not None and (batch is None or batch.id != expect.batch_id):
        where = f"batch {batch.batch_number} (id {batch.id})" if batch else "no batch yet"
        problems.append(f"it belongs to {where}, not to the expected batch id {expect.batch_id}")
    if expect.patient_id is not None and found.patient.id != expect.patient_id:
        problems.append(
            f"it belongs to patient COI {found.patient.coi}, not to the expected patient id "
            f"{expect.patient_id}"
        )
    if din is not None and found.biopsy.din != din.value:
        problems.append(f"its DIN is {found.biopsy.din}, not the expected {din.value}")
    return problems


def scan(
    session: Session,
    *,
    actor: User,
    code: str,
    expect: ScanExpectation | None,
    record_accepted: bool = True,
) -> ScanResult:
    """The scanned vessel with its batch, DIN and COI, or a refusal that names the problem.

    Every refusal is audited; an accepted scan too unless `record_accepted` is False (benchmark
    servers only, `Settings.scan_audit`)."""
    try:
        parsed = scanned_vessel_code(session, code)  # the QR, or the product label's Data Matrix
        expected_din = parse_din(expect.din) if expect and expect.din is not None else None
    except InvalidCode as exc:
        exc.aftermath = _refusal_record(actor, AuditAction.SCAN_INVALID_CODE, code)
        raise
    except NotFound as exc:
        exc.aftermath = _refusal_record(actor, AuditAction.SCAN_UNKNOWN_CODE, code)
        raise
    found = identity_by_code(session, parsed)
    if found is None:
        raise NotFound(
            f"No vessel has code {parsed}. The label may belong to another site or a "
            "voided record.",
            aftermath=_refusal_record(actor, AuditAction.SCAN_UNKNOWN_CODE, code),
        )
    coi = found.patient.coi
    problems = _mismatches(found, expect, expected_din) if expect else []
    if problems:
        raise IdentityMismatch(
            f"Identity mismatch for vessel {parsed}: " + "; ".join(problems) + ". Stop and "
            "set the vessel aside.",
            aftermath=partial(
                audit.record,
                actor=actor,
                action=AuditAction.SCAN_IDENTITY_MISMATCH,
                entity_type=EntityType.VESSEL,
                entity_id=found.vessel.id,
                coi=coi,
                new={
                    "code": parsed,
                    "expected": expect.model_dump(exclude_none=True) if expect else {},
                    "problems": problems,
                },
            ),
        )
    if found.biopsy.voided_at is not None or found.patient.voided_at is not None:
        raise InvalidState(
            f"Vessel {parsed} belongs to a voided registration; it must not be used.",
            aftermath=partial(
                audit.record,
                actor=actor,
                action=AuditAction.SCAN_VOIDED,
                entity_type=EntityType.VESSEL,
                entity_id=found.vessel.id,
                coi=coi,
                new={"code": parsed},
            ),
        )
    if record_accepted:
        audit.record(
            session,
            actor=actor,
            action=AuditAction.SCAN_OK,
            entity_type=EntityType.VESSEL,
            entity_id=found.vessel.id,
            coi=coi,
            new={
                "code": parsed,
                "expected": expect.model_dump(exclude_none=True) if expect else {},
            },
        )
    batch_summary = (
        batches.summary(batches.BatchContext(found.batch, found.biopsy, found.patient))
        if found.batch is not None
        else None
    )
    assert found.patient.id is not None
    return ScanResult(
        vessel=vessels.public(found.vessel, found.parent_code),
        batch=batch_summary,
        din=found.biopsy.din,
        din_check=DIN(found.biopsy.din).check,
        coi=coi,
        patient_id=found.patient.id,
    )
