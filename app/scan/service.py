"""The scan: validate the code, find the vessel, check what the scanner expected (COI-4, COI-5).

Every scan is recorded in the audit trail, whatever its outcome: accepted scans in the patient's
chain, refused ones as the aftermath of the refusal.
"""

from functools import partial

from sqlalchemy import select
from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.audit.models import AuditEvent
from app.auth.models import User
from app.batches import service as batches
from app.batches.service import BatchContext
from app.batches.states import BatchStatus
from app.biopsies import service as biopsies
from app.biopsies.schemas import BiopsyStatus
from app.errors import IdentityMismatch, InvalidCode, InvalidState, NotFound
from app.identity.codes import DIN, DIN_LENGTH, normalize, parse_din
from app.labels.scanned import scanned_vessel_code
from app.scan.schemas import ScanExpectation, ScanResult
from app.vessels import service as vessels
from app.vessels.repository import VesselIdentity, identity_by_code, identity_values_by_code
from app.vessels.states import NO_LONGER_IN_USE, VesselKind, VesselStatus


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


def _batch_named(session: Session, batch_id: int) -> str:
    try:
        return batches.get(session, batch_id).batch.batch_number
    except NotFound:
        return f"id {batch_id} (no such batch)"


def _mismatches(
    session: Session, found: VesselIdentity, expect: ScanExpectation, din: DIN | None
) -> tuple[list[str], list[str]]:
    """(what did not hold, what was checked and held); the expected batch is read only when
    the vessel is not in it (a refusal), so an accepted scan costs no query more."""
    problems, held = [], []
    batch = found.batch
    where = f"batch {batch.batch_number}" if batch else "no batch yet"
    if expect.batch_id is not None:
        if batch is None or batch.id != expect.batch_id:
            problems.append(
                f"it belongs to {where}, not to the expected batch "
                f"{_batch_named(session, expect.batch_id)}"
            )
        else:
            held.append(f"batch {batch.batch_number}")
    if expect.batch_number is not None:
        wanted = normalize(expect.batch_number)
        if batch is None or batch.batch_number != wanted:
            problems.append(f"it belongs to {where}, not to the expected batch {wanted}")
        elif f"batch {wanted}" not in held:
            held.append(f"batch {wanted}")
    if expect.patient_id is not None:
        if found.patient.id != expect.patient_id:
            problems.append(
                f"it belongs to patient COI {found.patient.coi}, not to the expected patient id "
                f"{expect.patient_id}"
            )
        else:
            held.append(f"patient COI {found.patient.coi}")
    if din is not None:
        if found.biopsy.din != din.value:
            problems.append(f"its DIN is {found.biopsy.din}, not the expected {din.value}")
        else:
            held.append(f"DIN {din.value}")
    return problems, held


# A batch in these states makes its vessels unfit for anything but discard or investigation.
_BATCH_CAUTION = {
    BatchStatus.ON_HOLD: "its batch is on hold (open deviation): only a discard is allowed",
    BatchStatus.REJECTED: "its batch was rejected by QA",
    BatchStatus.DESTROYED: "its batch was destroyed",
}


def fitness(found: VesselIdentity) -> tuple[bool, list[str]]:
    """(usable, flags): whether the scanned vessel may be used at all, and why not, as plain
    sentences (a consumed flask or an infused bag is found, but is no longer a container; a
    biopsy tube not received and accepted at the lab is not ready for anything)."""
    flags = []
    status = VesselStatus(found.vessel.status)
    usable = status not in NO_LONGER_IN_USE
    if not usable:
        flags.append(f"the vessel is {status.value}: it no longer exists as a container")
    if VesselKind(found.vessel.kind) is VesselKind.BIOPSY_TUBE:
        received = biopsies.status_of(found.biopsy)
        if received is BiopsyStatus.COLLECTED:
            usable = False
            flags.append("the biopsy tube has not been received at the lab")
        elif received is BiopsyStatus.REJECTED:
            usable = False
            flags.append("the biopsy tube was rejected at receipt")
    if found.batch is not None and (caution := _BATCH_CAUTION.get(BatchStatus(found.batch.status))):
        flags.append(caution)
    return usable, flags


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
    found = identity_values_by_code(session, parsed)  # read only: no ORM entities
    if found is None:
        raise NotFound(
            f"No vessel has code {parsed}. The label may belong to another site or a "
            "voided record.",
            aftermath=_refusal_record(actor, AuditAction.SCAN_UNKNOWN_CODE, code),
        )
    coi = found.patient.coi
    problems, held = _mismatches(session, found, expect, expected_din) if expect else ([], [])
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
    usable, flags = fitness(found)
    return ScanResult(
        vessel=vessels.public(found.vessel, found.parent_code),
        batch=batch_summary,
        din=found.biopsy.din,
        din_check=DIN(found.biopsy.din).check,
        coi=coi,
        patient_id=found.patient.id,
        checked=held,
        usable=usable,
        flags=flags,
    )


def resolve_batch(session: Session, raw: str) -> BatchContext:
    """The batch a scanned or typed text names, for a working context: its batch number
    (B26-00008), the code of any of its vessels, or its DIN (with or without the check
    character). Codes are parsed (format and check character) before any lookup (COI-4)."""
    text = normalize(raw)
    if batches.BATCH_NUMBER.fullmatch(text):
        return batches.by_number(session, text)
    try:
        code = scanned_vessel_code(session, raw)  # a vessel's QR or a dose's product label
    except InvalidCode as not_a_vessel:
        try:
            din = parse_din(raw)
        except InvalidCode as not_a_din:
            told = not_a_vessel if len(text) > DIN_LENGTH + 1 else not_a_din
            raise InvalidCode(
                f"{told.detail} Scan a vessel label or type the batch number (like B26-00008) or "
                "the DIN."
            ) from None
        return batches.by_din(session, din.value)
    found = identity_by_code(session, code)
    if found is None:
        raise NotFound(f"No vessel has code {code}.")
    if found.batch is None:
        raise NotFound(
            f"Vessel {code} is a biopsy tube whose batch is not registered yet; register "
            "the batch first."
        )
    return BatchContext(found.batch, found.biopsy, found.patient)


def whose(session: Session, raw: str) -> VesselIdentity | None:
    """Whose the vessel with the scanned code is (to name it on a STOP panel), or None when the
    code is invalid or unknown. Reads only; the scan itself is `scan()`."""
    try:
        code = scanned_vessel_code(session, raw)
    except (InvalidCode, NotFound):
        return None
    return identity_by_code(session, code)


def acknowledge_stop(session: Session, *, actor: User, code: str, batch_id: int | None) -> None:
    """A person acknowledges the STOP the scan of `code` raised against the working context of
    batch `batch_id`: they have read it and set the vessel aside. Audited in the scanned
    vessel's patient's chain, beside the mismatch it answers (the last one this person's scan of
    that vessel raised, by its `seq`), in the caller's transaction."""
    found = whose(session, code)
    facts: dict[str, object] = {"code": normalize(code)[:40], "set_aside": True}
    if batch_id is not None:
        facts["expected"] = {"batch_id": batch_id, "batch_number": _batch_named(session, batch_id)}
    if found is not None:
        facts["mismatch_seq"] = session.execute(
            select(AuditEvent.seq)
            .where(
                AuditEvent.entity_type == EntityType.VESSEL.value,
                AuditEvent.entity_id == found.vessel.id,
                AuditEvent.action == AuditAction.SCAN_IDENTITY_MISMATCH.value,
                AuditEvent.actor_id == actor.id,
            )
            .order_by(col(AuditEvent.seq).desc())
            .limit(1)
        ).scalar_one_or_none()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.SCAN_STOP_ACKNOWLEDGED,
        entity_type=EntityType.VESSEL,
        entity_id=found.vessel.id if found else None,
        coi=found.patient.coi if found else None,
        new=facts,
    )
