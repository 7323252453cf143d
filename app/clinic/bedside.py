"""The bedside check (COI-6): the right patient, a released batch, a dose not yet infused, at
the clinic and not expired — in this order, each refusal with its own code, every attempt
audited. Verification and the infusion record run the same function."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth.models import User
from app.batches.states import BatchStatus
from app.clinic.schemas import BedsideCheck
from app.clock import utcnow
from app.errors import (
    AlreadyInfused,
    Expired,
    HomewardError,
    IdentityMismatch,
    InvalidRequest,
    NotAtClinic,
    NotFound,
    NotReleased,
    chained,
)
from app.identity.codes import normalize
from app.labels.scanned import scanned_vessel_code
from app.patients.models import Patient
from app.release import integrity
from app.release import service as release
from app.release.service import ReleaseState
from app.storage import service as storage
from app.storage.models import CustodyEvent
from app.storage.schemas import CustodyKind
from app.vessels.repository import VesselIdentity, identity_by_code
from app.vessels.states import VesselStatus

SUPPLIED_STATES = frozenset(
    {BatchStatus.RELEASED, BatchStatus.CONDITIONALLY_RELEASED, BatchStatus.ISSUED}
)
# A completed batch was supplied: every dose of it is infused or disposed, which the later
# checks name (a dose scanned again after the last infusion is `already_infused`).
BEDSIDE_STATES = SUPPLIED_STATES | {BatchStatus.COMPLETED}
CHECKS = ("code", "patient identity", "release", "not infused", "at clinic", "not expired")


@dataclass(frozen=True)
class Verified:
    found: VesselIdentity
    release: ReleaseState
    at: datetime
    received: CustodyEvent  # the receipt at the clinic the dose's custody ends with


def _same_mrn(session: Session, wristband: str, patient: Patient) -> bool:
    """The wristband reads as the patient's MRN, forgiving case and scanner noise (MRNs are
    unique regardless of case); but a case twin registered before that rule (`mrn_twin_of`)
    makes a case variant ambiguous, so it is refused unless typed exactly."""
    if wristband.strip() == patient.mrn:
        return True
    if normalize(wristband) != patient.mrn_key:
        return False
    return _live_with_key(session, patient.mrn_key, besides=patient.id) is None


def _live_with_key(session: Session, key: str, *, besides: int | None = None) -> Patient | None:
    query = select(Patient).where(Patient.mrn_key == key, col(Patient.voided_at).is_(None))
    if besides is not None:
        query = query.where(col(Patient.id) != besides)
    return session.execute(query.order_by(col(Patient.id)).limit(1)).scalar_one_or_none()


def _checked(session: Session, actor: User, data: BedsideCheck, found: VesselIdentity) -> Verified:
    vessel, patient, batch = found.vessel, found.patient, found.batch
    if not vessel.is_dose or batch is None:
        raise InvalidRequest(f"Vessel {vessel.code} is not a dose; only doses are infused.")
    same_mrn = _same_mrn(session, data.wristband_mrn, patient)
    if not (same_mrn and data.birth_date == patient.birth_date):
        raise IdentityMismatch(
            f"STOP: dose {vessel.code} does not belong to the patient identified by this "
            "wristband and birth date. Do not infuse; set the dose aside and call the lab."
        )
    states = release.release_states(session, [batch.id or 0])
    state = states.get(batch.id or 0)
    if BatchStatus(batch.status) not in BEDSIDE_STATES or state is None or not state.supplies:
        why = state.describe() if state is not None else "not released"
        raise NotReleased(
            f"Dose {vessel.code} may not be infused: its batch {batch.batch_number} is "
            f"{batch.status.replace('_', ' ')} ({why})."
        )
    integrity.require_release_intact(session, actor=actor, batch_id=batch.id)
    if vessel.status == VesselStatus.INFUSED:
        raise AlreadyInfused(f"Dose {vessel.code} has already been infused.")
    # At the clinic by the recorded order of custody events, never by a client's clock (AUD-6).
    last = storage.latest_event(session, vessel.id or 0)
    if last is None or last.event != CustodyKind.RECEIVED or vessel.status != VesselStatus.RECEIVED:
        raise NotAtClinic(
            f"Dose {vessel.code} has not been received at the clinic; scan it in on arrival first."
        )
    now = utcnow()
    assert vessel.expires_at is not None
    if vessel.expires_at <= now:
        raise Expired(f"Dose {vessel.code}", vessel.expires_at)
    return Verified(found=found, release=state, at=now, received=last)


def verify(
    session: Session, *, actor: User, data: BedsideCheck, purpose: str, lock: bool = False
) -> Verified:
    """Run every bedside check in order; a refusal is audited (as its aftermath) with its code."""
    found: VesselIdentity | None = None
    try:
        parsed = scanned_vessel_code(session, data.dose_code)
        found = identity_by_code(session, parsed, lock=lock)
        if found is None:
            raise NotFound(f"No dose has code {parsed}.")
        return _checked(session, actor, data, found)
    except HomewardError as exc:
        exc.aftermath = chained(
            exc.aftermath,  # a signature mismatch's alert for QA (SIG-6)
            partial(
                _record_refusal, actor=actor, data=data, purpose=purpose, found=found, code=exc.code
            ),
        )
        raise


def _record_refusal(
    session: Session,
    *,
    actor: User,
    data: BedsideCheck,
    purpose: str,
    found: VesselIdentity | None,
    code: str,
) -> None:
    """A bedside refusal goes into the trail of every patient it concerns, each with only that
    patient's own identifiers: the dose's patient learns that a wristband of someone else was
    scanned (not whose), the wristband's patient that a dose of someone else was presented (not
    whose). The two events share an incident number so QA can join them."""
    refusal = {"purpose": purpose, "dose_code": normalize(data.dose_code)[:40], "refused": code}
    scanned = {"wristband_mrn": data.wristband_mrn, "birth_date": data.birth_date}
    if found is None:
        # No patient is known: the global chain gets the attempt without personal data.
        _refused(session, actor, entity_id=None, coi=None, new=refusal)
        return
    dose_patient = found.patient
    other = _live_with_key(session, normalize(data.wristband_mrn), besides=dose_patient.id)
    if other is None or _same_mrn(session, data.wristband_mrn, dose_patient):
        _refused(
            session, actor, entity_id=found.vessel.id, coi=dose_patient.coi, new=refusal | scanned
        )
        return
    incident = uuid.uuid4().hex[:12]
    _refused(
        session,
        actor,
        entity_id=found.vessel.id,
        coi=dose_patient.coi,
        new=refusal | {"wristband": "another patient's", "incident": incident},
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.BEDSIDE_REFUSED,
        entity_type=EntityType.PATIENT,
        entity_id=other.id,
        coi=other.coi,
        new={
            "purpose": purpose,
            "refused": code,
            "dose": "another patient's",
            "incident": incident,
        }
        | scanned,
    )


def _refused(
    session: Session, actor: User, *, entity_id: int | None, coi: str | None, new: dict[str, Any]
) -> None:
    audit.record(
        session,
        actor=actor,
        action=AuditAction.BEDSIDE_REFUSED,
        entity_type=EntityType.VESSEL,
        entity_id=entity_id,
        coi=coi,
        new=new,
    )
