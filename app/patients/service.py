"""Patient registration and voiding. The COI is assigned here, once, and never edited (COI-1)."""

from sqlalchemy import func, or_, select
from sqlmodel import Session, col

from app import voiding
from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth.models import User
from app.biopsies.models import Biopsy
from app.clock import utcnow
from app.config import Settings
from app.db import add_unique
from app.errors import DuplicateMRN, InvalidState, NotFound
from app.identity.codes import build_coi, normalize
from app.identity.sequences import next_value
from app.patients.models import Patient
from app.patients.schemas import PatientCreate, PatientPublic


def public(patient: Patient) -> PatientPublic:
    assert patient.id is not None
    return PatientPublic(
        id=patient.id,
        mrn=patient.mrn,
        coi=patient.coi,
        family_name=patient.family_name,
        given_name=patient.given_name,
        birth_date=patient.birth_date,
        sex=patient.sex,
        created_at=patient.created_at,
        voided=patient.voided_at is not None,
        mrn_twin_of=patient.mrn_twin_of,
        voided_at=patient.voided_at,
        void_reason=patient.void_reason,
    )


def mrn_key(mrn: str) -> str:
    """The MRN as compared: MRNs that differ only in case (or in a scanner's white space) are
    the same patient."""
    return normalize(mrn)


def _duplicate(mrn: str, registered: str | None = None) -> DuplicateMRN:
    shown = f"{mrn} (registered as {registered})" if registered and registered != mrn else mrn
    return DuplicateMRN(
        f"A patient with MRN {shown} is already registered; MRNs that differ only in case are "
        "the same patient."
    )


def register(session: Session, settings: Settings, *, actor: User, data: PatientCreate) -> Patient:
    """A new patient with a fresh COI; an MRN already registered (and not voided), in any case,
    is a 409."""
    key = mrn_key(data.mrn)
    live = select(Patient.mrn).where(Patient.mrn_key == key, col(Patient.voided_at).is_(None))
    registered = session.execute(live.limit(1)).scalar_one_or_none()
    if registered is not None:
        raise _duplicate(data.mrn, registered)
    year = utcnow().year
    sequence = next_value(session, f"coi:{settings.facility_id}:{year % 100:02d}")
    assert actor.id is not None
    patient = Patient(
        **data.model_dump(),
        mrn_key=key,
        coi=build_coi(settings.facility_id, year, sequence),
        created_by=actor.id,
    )
    add_unique(session, patient, _duplicate(data.mrn))
    audit.record(
        session,
        actor=actor,
        action=AuditAction.PATIENT_REGISTERED,
        entity_type=EntityType.PATIENT,
        entity_id=patient.id,
        coi=patient.coi,
        new=data.model_dump() | {"coi": patient.coi},
    )
    return patient


def get(session: Session, patient_id: int, *, lock: bool = False) -> Patient:
    """The patient; with `lock`, its row is locked until commit (see biopsies.service.get)."""
    patient = session.get(Patient, patient_id, with_for_update=lock or None)
    if patient is None:
        raise NotFound(f"No patient has id {patient_id}.")
    return patient


def find(session: Session, *, mrn: str | None = None, limit: int = 100) -> list[Patient]:
    """Patients, newest first, optionally those with one MRN in any case (voided registrations
    included)."""
    query = select(Patient).order_by(col(Patient.id).desc()).limit(limit)
    if mrn is not None:
        query = query.where(Patient.mrn_key == mrn_key(mrn))
    return list(session.execute(query).scalars())


def search(session: Session, text: str, *, limit: int = 50) -> list[Patient]:
    """Patients whose MRN is `text` (in any case) or whose family or given name contains it,
    newest first (voided registrations included, to be seen as such)."""
    typed = text.strip()
    if not typed:
        return find(session, limit=limit)
    pattern = (
        "%" + typed.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    )
    named = or_(
        func.lower(Patient.family_name).like(pattern, escape="\\"),
        func.lower(Patient.given_name).like(pattern, escape="\\"),
        Patient.mrn_key == mrn_key(typed),
    )
    query = select(Patient).where(named).order_by(col(Patient.id).desc()).limit(limit)
    return list(session.execute(query).scalars())


def void(session: Session, *, actor: User, patient_id: int, reason: str) -> Patient:
    """Void a wrong registration so it can be redone; its biopsies must be voided first."""
    patient = get(session, patient_id, lock=True)
    live_biopsy = select(Biopsy.din).where(
        Biopsy.patient_id == patient.id, col(Biopsy.voided_at).is_(None)
    )
    din = session.execute(live_biopsy.limit(1)).scalar_one_or_none()
    if din is not None:
        raise InvalidState(
            f"Patient {patient.coi} still has biopsy {din}; void its biopsies before the patient."
        )
    voiding.void(
        session,
        patient,
        actor=actor,
        action=AuditAction.PATIENT_VOIDED,
        entity_type=EntityType.PATIENT,
        coi=patient.coi,
        label=f"Patient {patient.coi}",
        reason=reason,
    )
    return patient
