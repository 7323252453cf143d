"""Biopsy registration (a DIN and a labelled tube), receipt at the lab by scanning, voiding."""

from functools import partial

from sqlalchemy import select
from sqlmodel import Session, col

from app import chronology, voiding
from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth.models import User
from app.batches.models import Batch
from app.batches.states import BatchStatus
from app.biopsies.models import Biopsy
from app.biopsies.schemas import BiopsyCreate, BiopsyPublic, BiopsyReceipt, BiopsyStatus
from app.clock import in_future, utcnow
from app.config import Settings
from app.errors import IdentityMismatch, InvalidRequest, InvalidState, NotFound
from app.identity.codes import DIN, parse_vessel_code
from app.identity.sequences import next_value
from app.lifecycle import transition
from app.patients import service as patients
from app.patients.models import Patient
from app.vessels import service as vessels
from app.vessels.models import Vessel
from app.vessels.repository import identity_by_code
from app.vessels.states import VESSEL_LIFECYCLE, VesselKind, VesselStatus


def status_of(biopsy: Biopsy) -> BiopsyStatus:
    if biopsy.voided_at is not None:
        return BiopsyStatus.VOIDED
    if biopsy.received_at is None:
        return BiopsyStatus.COLLECTED
    return BiopsyStatus.RECEIVED if biopsy.accepted else BiopsyStatus.REJECTED


def public(biopsy: Biopsy, tube: Vessel) -> BiopsyPublic:
    assert biopsy.id is not None
    return BiopsyPublic(
        id=biopsy.id,
        din=biopsy.din,
        din_check=DIN(biopsy.din).check,
        patient_id=biopsy.patient_id,
        tube_code=tube.code,
        collected_at=biopsy.collected_at,
        site=biopsy.site,
        mass_mg=biopsy.mass_mg,
        status=status_of(biopsy),
        received_at=biopsy.received_at,
        receipt_temperature_c=biopsy.receipt_temperature_c,
        accepted=biopsy.accepted,
        receipt_recorded_at=biopsy.receipt_recorded_at,
        receipt_late=biopsy.receipt_late_reason is not None,
        receipt_late_reason=biopsy.receipt_late_reason,
    )


def get(session: Session, biopsy_id: int, *, lock: bool = False) -> tuple[Biopsy, Patient, Vessel]:
    """The biopsy, its patient and its tube, in one query.

    With `lock`, the biopsy row is locked until commit (PostgreSQL; SQLite's BEGIN IMMEDIATE
    already serializes writers), so two conflicting changes cannot both win.
    """
    query = (
        select(Biopsy, Patient, Vessel)
        .join(Patient, col(Patient.id) == Biopsy.patient_id)
        .join(
            Vessel, (col(Vessel.biopsy_id) == Biopsy.id) & (Vessel.kind == VesselKind.BIOPSY_TUBE)
        )
        .where(Biopsy.id == biopsy_id)
    )
    row = session.execute(query.with_for_update(of=Biopsy) if lock else query).first()
    if row is None:
        raise NotFound(f"No biopsy has id {biopsy_id}.")
    return row[0], row[1], row[2]


def of_patient(session: Session, patient_id: int) -> list[tuple[Biopsy, Vessel]]:
    """The patient's biopsies with their tubes, newest first (voided ones included)."""
    query = (
        select(Biopsy, Vessel)
        .join(
            Vessel, (col(Vessel.biopsy_id) == Biopsy.id) & (Vessel.kind == VesselKind.BIOPSY_TUBE)
        )
        .where(Biopsy.patient_id == patient_id)
        .order_by(col(Biopsy.id).desc())
    )
    return [(row[0], row[1]) for row in session.execute(query)]


def scanned_tube(session: Session, raw: str) -> tuple[Biopsy, Patient, Vessel]:
    """The biopsy whose tube label was scanned: the code is parsed (format and check character)
    before any lookup (COI-4), as the scan does; a code of no vessel, or of a vessel that is not
    a biopsy tube, is refused in words. Reads only: the receipt itself checks the tube again."""
    code = parse_vessel_code(raw).value
    found = identity_by_code(session, code)
    if found is None:
        raise NotFound(
            f"No vessel has code {code}. The label may belong to another site or a voided record."
        )
    if VesselKind(found.vessel.kind) is not VesselKind.BIOPSY_TUBE:
        where = f"batch {found.batch.batch_number}" if found.batch else f"biopsy {found.biopsy.din}"
        raise InvalidRequest(
            f"{code} is a {VesselKind(found.vessel.kind).value.replace('_', ' ')} of {where}, "
            "not a biopsy tube: scan the label on the biopsy tube."
        )
    return found.biopsy, found.patient, found.vessel


def register(
    session: Session, settings: Settings, *, actor: User, data: BiopsyCreate
) -> tuple[Biopsy, Vessel]:
    """A new biopsy of a live patient, with a fresh DIN and its tube vessel."""
    patient = patients.get(session, data.patient_id, lock=True)
    if patient.voided_at is not None:
        raise InvalidState(
            f"Patient {patient.coi} is voided; register the biopsy on the redone record."
        )
    now = utcnow()
    if in_future(data.collected_at):
        raise InvalidRequest("The collection time is in the future.")
    sequence = next_value(session, f"din:{settings.facility_id}:{now.year % 100:02d}")
    din = DIN.build(settings.facility_id, now.year, sequence)
    assert actor.id is not None
    biopsy = Biopsy(
        patient_id=data.patient_id,
        din=din.value,
        collected_at=data.collected_at,
        site=data.site,
        mass_mg=data.mass_mg,
        created_by=actor.id,
    )
    session.add(biopsy)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.BIOPSY_REGISTERED,
        entity_type=EntityType.BIOPSY,
        entity_id=biopsy.id,
        coi=patient.coi,
        new=data.model_dump() | {"din": din.value},
    )
    tube = vessels.create(
        session,
        actor=actor,
        biopsy=biopsy,
        coi=patient.coi,
        batch_id=None,
        kind=VesselKind.BIOPSY_TUBE,
        location="clinic",
    )
    return biopsy, tube


def receive(
    session: Session, settings: Settings, *, actor: User, biopsy_id: int, data: BiopsyReceipt
) -> tuple[Biopsy, Vessel]:
    """Record receipt at the lab; the scanned tube must be this biopsy's (else 409, audited)."""
    biopsy, patient, tube = get(session, biopsy_id, lock=True)
    scanned = parse_vessel_code(data.scanned_code).value
    if scanned != tube.code:
        raise IdentityMismatch(
            f"The scanned tube {scanned} is not the tube of biopsy {biopsy.din} ({tube.code}). "
            "Do not receive it; check both labels.",
            aftermath=partial(
                audit.record,
                actor=actor,
                action=AuditAction.BIOPSY_RECEIPT_MISMATCH,
                entity_type=EntityType.BIOPSY,
                entity_id=biopsy.id,
                coi=patient.coi,
                new={"expected_code": tube.code, "scanned_code": scanned},
            ),
        )
    if status_of(biopsy) is not BiopsyStatus.COLLECTED:
        raise InvalidState(
            f"Biopsy {biopsy.din} is {status_of(biopsy).value}; it cannot be received."
        )
    dated = chronology.check(
        "receipt",
        data.received_at,
        not_before=[(f"the collection of biopsy {biopsy.din}", biopsy.collected_at)],
        now=utcnow(),
        skew=settings.late_entry_skew,
        late_reason=data.late_reason,
    )
    biopsy.received_at = dated.occurred_at
    biopsy.receipt_recorded_at = dated.recorded_at
    biopsy.receipt_late_reason = dated.late_reason
    biopsy.received_by = actor.id
    biopsy.receipt_temperature_c = data.temperature_c
    biopsy.accepted = data.accepted
    biopsy.receipt_note = data.note
    session.add(biopsy)
    tube.location = "lab reception"
    session.add(tube)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.BIOPSY_RECEIVED,
        entity_type=EntityType.BIOPSY,
        entity_id=biopsy.id,
        coi=patient.coi,
        old={"status": BiopsyStatus.COLLECTED},
        new=data.model_dump(exclude={"scanned_code", "late_reason"})
        | {
            "status": status_of(biopsy),
            "recorded_at": dated.recorded_at,
            "late": dated.late,
            "late_reason": dated.late_reason,
        },
    )
    if not data.accepted:
        transition(
            session,
            VESSEL_LIFECYCLE,
            tube,
            VesselStatus.DISCARDED,
            actor=actor,
            coi=patient.coi,
            label=f"Tube {tube.code}",
            reason="biopsy not accepted at receipt",
        )
    return biopsy, tube


def void(session: Session, *, actor: User, biopsy_id: int, reason: str) -> tuple[Biopsy, Vessel]:
    """Void a wrong registration; a biopsy whose batch is still live cannot be voided."""
    biopsy, patient, tube = get(session, biopsy_id, lock=True)
    batch_status = session.execute(
        select(Batch.status).where(Batch.biopsy_id == biopsy.id)
    ).scalar_one_or_none()
    if batch_status is not None and batch_status != BatchStatus.DESTROYED:
        raise InvalidState(
            f"Biopsy {biopsy.din} has a batch that is {batch_status}; destroy the batch first."
        )
    voiding.void(
        session,
        biopsy,
        actor=actor,
        action=AuditAction.BIOPSY_VOIDED,
        entity_type=EntityType.BIOPSY,
        coi=patient.coi,
        label=f"Biopsy {biopsy.din}",
        reason=reason,
    )
    return biopsy, tube
