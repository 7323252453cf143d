"""The bedside check (COI-6): the right patient, a released batch, a dose not yet infused, at
the clinic and not expired — in this order, each refusal with its own code, every attempt
audited. Verification and the infusion record run the same function."""

from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy import func, select
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
)
from app.identity.codes import normalize, parse_vessel_code
from app.patients.models import Patient
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
    """The wristband reads as the patient's MRN, forgiving case and scanner noise; but MRNs are
    unique only as typed, so a case variant is refused when another live patient's MRN reads the
    same (`ab12` and `AB12` may be two patients)."""
    if wristband.strip() == patient.mrn:
        return True
    scanned = normalize(wristband)
    if scanned != normalize(patient.mrn):
        return False
    namesake = session.execute(
        select(Patient.id)
        .where(
            func.upper(Patient.mrn) == scanned,
            col(Patient.id) != patient.id,
            col(Patient.voided_at).is_(None),
        )
        .limit(1)
    ).first()
    return namesake is None


def _checked(session: Session, data: BedsideCheck, found: VesselIdentity) -> Verified:
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
        raise Expired(f"Dose {vessel.code} expired at {vessel.expires_at:%Y-%m-%d %H:%M} UTC.")
    return Verified(found=found, release=state, at=now, received=last)


def verify(
    session: Session, *, actor: User, data: BedsideCheck, purpose: str, lock: bool = False
) -> Verified:
    """Run every bedside check in order; a refusal is audited (as its aftermath) with its code."""
    found: VesselIdentity | None = None
    try:
        parsed = parse_vessel_code(data.dose_code).value
        found = identity_by_code(session, parsed, lock=lock)
        if found is None:
            raise NotFound(f"No dose has code {parsed}.")
        return _checked(session, data, found)
    except HomewardError as exc:
        exc.aftermath = partial(
            audit.record,
            actor=actor,
            action=AuditAction.BEDSIDE_REFUSED,
            entity_type=EntityType.VESSEL,
            entity_id=found.vessel.id if found else None,
            coi=found.patient.coi if found else None,
            new={
                "purpose": purpose,
                "dose_code": normalize(data.dose_code)[:40],
                "refused": exc.code,
                # What was scanned at the bedside goes only into a patient's own trail.
                **(
                    {"wristband_mrn": data.wristband_mrn, "birth_date": data.birth_date}
                    if found is not None
                    else {}
                ),
            },
        )
        raise
