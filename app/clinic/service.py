"""The clinic: bedside verification and the two-person infusion record (COI-6), infusion plans
from the protocol template (CLN-2)."""

from datetime import timedelta
from functools import partial

from sqlalchemy import select
from sqlmodel import Session, col

from app import chronology
from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth import security
from app.auth import service as auth
from app.auth.models import User
from app.auth.permissions import Role
from app.batches import service as batches
from app.batches.service import BatchContext
from app.clinic import bedside
from app.clinic.models import Infusion, PlannedInfusion
from app.clinic.schemas import (
    BedsideCheck,
    BedsidePublic,
    InfusionCreate,
    InfusionPublic,
    PlanCreate,
    PlannedInfusionPublic,
    Reschedule,
)
from app.config import Settings
from app.db import add_unique
from app.errors import (
    AlreadyInfused,
    Conflict,
    Forbidden,
    HomewardError,
    InvalidCredentials,
    InvalidState,
    NotFound,
    Told,
)
from app.gmp_settings import service as gmp_settings
from app.identity.codes import normalize
from app.lifecycle import transition
from app.qualifications import service as qualifications
from app.qualifications.schemas import Duty
from app.vessels.models import Vessel
from app.vessels.states import VESSEL_LIFECYCLE, VesselStatus


def _public_check(checked: bedside.Verified) -> BedsidePublic:
    found = checked.found
    assert found.batch is not None and found.vessel.expires_at is not None
    return BedsidePublic(
        ok=True,
        dose_code=found.vessel.code,
        patient_id=found.patient.id or 0,
        mrn=found.patient.mrn,
        coi=found.patient.coi,
        batch_id=found.batch.id or 0,
        batch_number=found.batch.batch_number,
        expires_at=found.vessel.expires_at,
        release=checked.release.describe(),
        checks=list(bedside.CHECKS),
    )


def verify(session: Session, *, actor: User, data: BedsideCheck) -> BedsidePublic:
    """The bedside check alone (COI-6); every attempt, passed or refused, is audited."""
    checked = bedside.verify(session, actor=actor, data=data, purpose="verify")
    found = checked.found
    audit.record(
        session,
        actor=actor,
        action=AuditAction.BEDSIDE_VERIFIED,
        entity_type=EntityType.VESSEL,
        entity_id=found.vessel.id,
        coi=found.patient.coi,
        new={
            "purpose": "verify",
            "dose_code": found.vessel.code,
            "wristband_mrn": data.wristband_mrn,
            "birth_date": data.birth_date,
            "checks": list(bedside.CHECKS),
        },
    )
    return _public_check(checked)


def _witness(session: Session, settings: Settings, *, actor: User, data: InfusionCreate) -> User:
    """The second clinician, authenticated by their own password. Every refusal is audited; a
    wrong password also counts towards the witness's lockout."""
    refusal = partial(
        audit.record,
        actor=actor,
        action=AuditAction.WITNESS_FAILED,
        entity_type=EntityType.USER,
        entity_id=None,
        new={"witness": data.witness_username[:64], "dose_code": normalize(data.dose_code)[:40]},
        coi=None,
    )
    if data.witness_username == actor.username:
        raise Forbidden(
            "The witness must be a second clinician, not the one administering.",
            aftermath=refusal,
        )
    witness = auth.user_by_username(session, data.witness_username)
    wrong = "The witness's username or password is wrong; nothing was recorded."
    # A witness whose password an admin set (and so knows) cannot witness until they change it.
    if (
        witness is None
        or not witness.active
        or auth.is_locked(witness)
        or witness.password_change_required
    ):
        security.burn_password_check(settings, data.witness_password)
        raise InvalidCredentials(wrong, aftermath=refusal)
    if not security.password_matches(settings, witness.password_hash, data.witness_password):
        raise InvalidCredentials(
            wrong,
            aftermath=partial(
                auth.record_failed_password,
                settings=settings,
                user_id=witness.id or 0,
                action=AuditAction.WITNESS_FAILED,
                context={
                    "administered_by": actor.username,
                    "dose_code": normalize(data.dose_code)[:40],
                },
            ),
        )
    if Role.CLINICIAN not in auth.roles_of(session, witness.id or 0):
        raise Forbidden(
            f"{witness.username} is not a clinician; the witness must be one.", aftermath=refusal
        )
    auth.refuse_admin(session, witness, "witness an infusion", aftermath=refusal)
    return witness


def infuse(session: Session, settings: Settings, *, actor: User, data: InfusionCreate) -> Infusion:
    """Record an infusion: every bedside check again on the locked dose, a witness who is a
    second clinician, then the dose is infused and the batch completed when nothing is left.
    Neither the one administering nor the witness may hold `admin` (SEC-2)."""
    auth.refuse_admin(session, actor, "infuse")
    checked = bedside.verify(session, actor=actor, data=data, purpose="infusion", lock=True)
    witness = _witness(session, settings, actor=actor, data=data)
    found = checked.found
    dose, batch, patient = found.vessel, found.batch, found.patient
    assert batch is not None
    # Read under the dose's and batch's locks (bedside.verify(lock=True)), so nothing recorded
    # meanwhile can follow the infusion it precedes.
    dated = chronology.check(
        "infusion",
        data.administered_at,
        not_before=[
            (f"dose {dose.code}'s receipt at the clinic", checked.received.occurred_at),
            (
                f"batch {batch.batch_number}'s release",
                chronology.released_at(session, batch.id or 0),
            ),
        ],
        now=checked.at,
        skew=settings.late_entry_skew,
        late_reason=data.late_reason,
    )
    # SEC-5: qualified when the infusion took place (its time checked above); held until commit.
    qualifications.require(
        session,
        witness,
        Duty.BEDSIDE_WITNESS,
        at=dated.occurred_at,
        context={"administered_by": actor.username, "dose_code": dose.code},
    )
    infusion = Infusion(
        dose_id=dose.id or 0,
        batch_id=batch.id or 0,
        patient_id=patient.id or 0,
        administered_at=data.administered_at,
        administered_by=actor.id or 0,
        witness_id=witness.id or 0,
        volume_ml=data.volume_ml,
        observations=data.observations,
        adverse_reactions=data.adverse_reactions,
        recorded_at=dated.recorded_at,
        late_reason=dated.late_reason,
    )
    add_unique(session, infusion, AlreadyInfused(f"Dose {dose.code} has already been infused."))
    transition(
        session,
        VESSEL_LIFECYCLE,
        dose,
        VesselStatus.INFUSED,
        actor=actor,
        coi=patient.coi,
        label=f"Dose {dose.code}",
        extra={"infusion_id": infusion.id},
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.INFUSION_RECORDED,
        entity_type=EntityType.INFUSION,
        entity_id=infusion.id,
        coi=patient.coi,
        new={
            "dose_code": dose.code,
            "batch_id": batch.id,
            "administered_at": data.administered_at,
            "late": dated.late,
            "late_reason": dated.late_reason,
            "witness": witness.username,
            "wristband_mrn": data.wristband_mrn,
            "birth_date": data.birth_date,
            "volume_ml": data.volume_ml,
            "observations": data.observations,
            "adverse_reactions": data.adverse_reactions,
        },
    )
    batches.complete_if_done(session, actor=actor, batch_id=batch.id or 0)
    return infusion


def infusion_public(session: Session, infusion: Infusion) -> InfusionPublic:
    dose = session.get(Vessel, infusion.dose_id)
    people = auth.usernames(session, [infusion.administered_by, infusion.witness_id])
    context = batches.get(session, infusion.batch_id)
    assert dose is not None
    return InfusionPublic(
        id=infusion.id or 0,
        dose_code=dose.code,
        batch_id=infusion.batch_id,
        patient_id=infusion.patient_id,
        administered_at=infusion.administered_at,
        administered_by=people[infusion.administered_by],
        witness=people[infusion.witness_id],
        volume_ml=infusion.volume_ml,
        observations=infusion.observations,
        adverse_reactions=infusion.adverse_reactions,
        recorded_at=infusion.recorded_at,
        batch_status=context.batch.status,
        late=infusion.late_reason is not None,
        late_reason=infusion.late_reason,
    )


# -- planning (CLN-2) ----------------------------------------------------------------------------


def _doses_to_plan(session: Session, context: BatchContext) -> list[Vessel]:
    """The batch's doses a plan would cover, in order; refused when there is none or the
    batch is planned already."""
    batch_id = context.batch.id or 0
    doses = [
        v
        for v in session.execute(
            select(Vessel)
            .where(Vessel.batch_id == batch_id, col(Vessel.is_dose).is_(True))
            .order_by(col(Vessel.sequence))
        ).scalars()
        if VesselStatus(v.status) not in (VesselStatus.DISCARDED, VesselStatus.INFUSED)
    ]
    if not doses:
        raise InvalidState(f"Batch {context.batch.batch_number} has no dose to plan.")
    if planned(session, [batch_id]):
        raise Conflict(
            f"Batch {context.batch.batch_number} already has an infusion plan; reschedule its "
            "infusions one by one (with a reason)."
        )
    return doses


def plan_refusal(session: Session, context: BatchContext) -> HomewardError | None:
    """Why planning the batch's doses would be refused now, or None when it is possible (a
    page offers the plan only then)."""
    try:
        _doses_to_plan(session, context)
    except (InvalidState, Conflict) as refusal:
        return refusal
    return None


def plan(
    session: Session, settings: Settings, *, actor: User, batch_id: int, data: PlanCreate
) -> list[PlannedInfusionPublic]:
    """One planned infusion per dose of the batch not yet planned, from the protocol template:
    the first on `first_infusion_at`, each next one in the protocol's interval window."""
    context = batches.get(session, batch_id, lock=True)
    doses = _doses_to_plan(session, context)
    protocol = gmp_settings.infusion_protocol(session)
    low = timedelta(days=protocol.interval_min_days)
    high = timedelta(days=protocol.interval_max_days)
    middle = (low + high) / 2
    first = data.first_infusion_at
    rows = []
    for index, dose in enumerate(doses[: protocol.doses]):
        row = PlannedInfusion(
            batch_id=batch_id,
            dose_id=dose.id or 0,
            sequence=index + 1,
            planned_at=first + middle * index,
            window_start=first + low * index,
            window_end=first + high * index,
            created_by=actor.id or 0,
        )
        rows.append(row)
    session.add_all(rows)
    session.flush()
    views = planned_public(session, rows)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.INFUSION_PLANNED,
        entity_type=EntityType.BATCH,
        entity_id=batch_id,
        coi=context.patient.coi,
        new={
            "plan": [
                {"dose_code": v.dose_code, "sequence": v.sequence, "planned_at": v.planned_at}
                for v in views
            ],
            "protocol": {
                "doses": protocol.doses,
                "interval_days": [low.days, high.days],
            },
        },
    )
    return views


def reschedule(
    session: Session, *, actor: User, planned_id: int, data: Reschedule
) -> PlannedInfusionPublic:
    """Move one planned infusion, with a reason (audited, old and new dates)."""
    found = session.get(PlannedInfusion, planned_id)
    if found is None:
        raise NotFound(f"No planned infusion has id {planned_id}.")
    context = batches.get(session, found.batch_id, lock=True)
    # Read again under the batch's lock: a reschedule committed while we waited is the old date.
    row = session.get(PlannedInfusion, planned_id, populate_existing=True)
    assert row is not None
    old = row.planned_at
    row.planned_at = data.planned_at
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.INFUSION_RESCHEDULED,
        entity_type=EntityType.BATCH,
        entity_id=row.batch_id,
        coi=context.patient.coi,
        old={"planned_infusion_id": planned_id, "planned_at": old},
        new={"planned_infusion_id": planned_id, "planned_at": data.planned_at},
        reason=data.reason,
    )
    (view,) = planned_public(session, [row])
    return view


def planned(session: Session, batch_ids: list[int]) -> list[PlannedInfusion]:
    if not batch_ids:
        return []
    return list(
        session.execute(
            select(PlannedInfusion)
            .where(col(PlannedInfusion.batch_id).in_(batch_ids))
            .order_by(col(PlannedInfusion.batch_id), col(PlannedInfusion.sequence))
        ).scalars()
    )


def planned_public(session: Session, rows: list[PlannedInfusion]) -> list[PlannedInfusionPublic]:
    """Planned infusions with their dose, and warnings: after the dose's expiry, outside the
    protocol window (one query for the doses)."""
    doses = (
        {
            v.id: v
            for v in session.execute(
                select(Vessel).where(col(Vessel.id).in_([r.dose_id for r in rows]))
            ).scalars()
        }
        if rows
        else {}
    )
    views = []
    for row in rows:
        dose = doses[row.dose_id]
        warnings = []
        if dose.expires_at is not None and row.planned_at > dose.expires_at:
            warnings.append(Told("planned after the dose expires ({at})", at=dose.expires_at))
        # The first infusion sets the protocol's clock; the later ones keep to their window.
        if row.sequence > 1 and not row.window_start <= row.planned_at <= row.window_end:
            warnings.append(
                f"outside the protocol window {row.window_start:%Y-%m-%d} to "
                f"{row.window_end:%Y-%m-%d}"
            )
        views.append(
            PlannedInfusionPublic(
                id=row.id or 0,
                batch_id=row.batch_id,
                dose_code=dose.code,
                sequence=row.sequence,
                planned_at=row.planned_at,
                window_start=row.window_start,
                window_end=row.window_end,
                dose_expires_at=dose.expires_at,
                infused=dose.status == VesselStatus.INFUSED,
                warnings=warnings,
            )
        )
    return views
