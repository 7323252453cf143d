"""The clinic's readiness board (CLN-1): per patient in treatment, where their cells are and
whether a dose can be infused now, with the reason when not — a page at a time, in a fixed number
of queries that read only what is open, however many patients and batches the lab has had."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, exists, func, or_, select, union
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from app.batches import service as batches
from app.batches.models import Batch
from app.batches.states import FINAL, BatchStatus
from app.biopsies.models import Biopsy
from app.clinic import service as clinic
from app.clinic.bedside import SUPPLIED_STATES
from app.clinic.schemas import (
    PAGE_SIZE,
    BoardPage,
    DoseOnBoard,
    PlannedInfusionPublic,
    ReadinessRow,
)
from app.clock import utcnow
from app.config import Settings
from app.deviations.models import Deviation
from app.deviations.states import UNRESOLVED
from app.patients.models import Patient
from app.qc import service as qc
from app.qc.evaluation import Outcome
from app.qc.models import QcResult
from app.release import service as release
from app.release.service import ReleaseState
from app.specifications import service as specifications
from app.specifications.models import SpecificationTest
from app.storage.models import CustodyEvent
from app.storage.schemas import CustodyKind
from app.vessels.models import Vessel
from app.vessels.states import VesselKind, VesselStatus

MANUFACTURING = frozenset(
    {BatchStatus.REGISTERED, BatchStatus.ISOLATION, BatchStatus.EXPANSION, BatchStatus.HARVESTED}
)
OPEN = [s.value for s in BatchStatus if s not in FINAL]


@dataclass
class _Facts:
    """What the board knows of one batch, gathered from the batched queries."""

    batch: Batch
    tests: int
    passed: int
    failed: int
    state: ReleaseState | None
    doses: list[DoseOnBoard]
    deviations: list[str]
    alerts: list[str]
    holding_alerts: list[str]  # the alerts whose failing result's deviation is still open
    planned: list[PlannedInfusionPublic]


def _shown(cutoff: datetime):
    """A batch keeps its patient on the board until it has ended for a while (ADR 0013)."""
    return or_(col(Batch.status).in_(OPEN), col(Batch.status_changed_at) >= cutoff)


def _candidates(cutoff: datetime):
    """The biopsies that may be a patient's in treatment, read through indexes on what is open so
    that history does not make them slower: those whose batch is shown, and those whose tube is
    not in a batch yet (vessel.batch_id is empty only then)."""
    return union(
        select(Batch.biopsy_id.label("biopsy_id")).where(_shown(cutoff)),
        select(Vessel.biopsy_id).where(
            col(Vessel.batch_id).is_(None), Vessel.kind == VesselKind.BIOPSY_TUBE.value
        ),
    ).subquery("candidates")


def _in_treatment(cutoff: datetime):
    """The patient's newest live biopsy, with a batch shown or none yet (a biopsy rejected at
    receipt has ended then): the patient is in treatment (ADR 0013)."""
    newer = aliased(Biopsy)
    return and_(
        col(Patient.voided_at).is_(None),
        col(Biopsy.voided_at).is_(None),
        ~exists().where(
            newer.patient_id == Biopsy.patient_id,
            col(newer.voided_at).is_(None),
            col(newer.id) > Biopsy.id,
        ),
        or_(
            _shown(cutoff),
            col(Batch.id).is_(None)
            & or_(col(Biopsy.accepted).is_not(False), col(Biopsy.received_at) >= cutoff),
        ),
    )


def _stage():
    """The board's order: the patients nearest an infusion first (ADR 0013)."""
    dose_at_clinic = exists().where(
        Vessel.batch_id == Batch.id,
        col(Vessel.is_dose).is_(True),
        Vessel.status == VesselStatus.RECEIVED.value,
    )
    supplied = col(Batch.status).in_([s.value for s in SUPPLIED_STATES])
    return case(
        (col(Biopsy.accepted).is_(False), 6),  # rejected at receipt: ended
        (col(Batch.id).is_(None), 5),
        (supplied & dose_at_clinic, 0),
        (supplied, 1),
        (Batch.status == BatchStatus.ON_HOLD.value, 2),
        (Batch.status == BatchStatus.QUARANTINE.value, 3),
        (col(Batch.status).in_([s.value for s in MANUFACTURING]), 4),
        else_=6,  # ended
    )


def _page(
    session: Session, *, shown_for: timedelta, limit: int, offset: int
) -> tuple[int, list[tuple[Patient, Biopsy, Batch | None]]]:
    """The requested page of the patients in treatment and how many there are, in one query (two
    for a page past the end, which has no row to carry the count)."""
    cutoff = utcnow() - shown_for
    candidates = _candidates(cutoff)
    rows = (
        select(Patient, Biopsy, Batch)
        .select_from(candidates)
        .join(Biopsy, col(Biopsy.id) == candidates.c.biopsy_id)
        .join(Patient, col(Patient.id) == Biopsy.patient_id)
        .outerjoin(Batch, col(Batch.biopsy_id) == Biopsy.id)
        .where(_in_treatment(cutoff))
    )
    found = session.execute(
        rows.add_columns(func.count().over())
        .order_by(_stage(), col(Patient.family_name), col(Patient.given_name), col(Patient.id))
        .limit(limit)
        .offset(offset)
    ).all()
    total = found[0][3] if found else _count(session, rows) if offset else 0
    return total, [(patient, biopsy, batch) for patient, biopsy, batch, _ in found]


def _count(session: Session, rows) -> int:
    return session.execute(
        select(func.count()).select_from(rows.with_only_columns(Biopsy.id).subquery())
    ).scalar_one()


def _doses(
    session: Session, batch_ids: list[int], planned: dict[str, PlannedInfusionPublic]
) -> dict[int, list[DoseOnBoard]]:
    vessels = list(
        session.execute(
            select(Vessel)
            .where(col(Vessel.batch_id).in_(batch_ids), col(Vessel.is_dose).is_(True))
            .order_by(col(Vessel.sequence))
        ).scalars()
    )
    last_event: dict[int, str] = {}
    for vessel_id, event in session.execute(
        select(CustodyEvent.vessel_id, CustodyEvent.event)
        .join(Vessel, col(Vessel.id) == CustodyEvent.vessel_id)
        .where(col(Vessel.batch_id).in_(batch_ids), col(Vessel.is_dose).is_(True))
        .order_by(col(CustodyEvent.id))  # the recorded order, never a client's clock (AUD-6)
    ):
        last_event[vessel_id] = event
    now = utcnow()
    found: dict[int, list[DoseOnBoard]] = {batch_id: [] for batch_id in batch_ids}
    for v in vessels:
        plan = planned.get(v.code)
        found[v.batch_id or 0].append(
            DoseOnBoard(
                code=v.code,
                status=v.status,
                expires_at=v.expires_at,
                expired=v.expires_at is not None and v.expires_at <= now,
                location=v.location,
                at_clinic=last_event.get(v.id or 0) == CustodyKind.RECEIVED
                and v.status == VesselStatus.RECEIVED,
                planned_at=plan.planned_at if plan else None,
            )
        )
    return found


def _facts(session: Session, settings: Settings, batch_list: list[Batch]) -> dict[int, _Facts]:
    ids = [b.id or 0 for b in batch_list]
    current_spec = specifications.current_id(session)
    specs = {b.specification_id or current_spec for b in batch_list}
    counts = dict(
        session.execute(
            select(SpecificationTest.specification_id, func.count())
            .where(col(SpecificationTest.specification_id).in_(specs))
            .group_by(col(SpecificationTest.specification_id))
        ).all()
    )
    results: dict[int, list[QcResult]] = {batch_id: [] for batch_id in ids}
    for result in session.execute(
        select(QcResult).where(col(QcResult.batch_id).in_(ids)).order_by(col(QcResult.id))
    ).scalars():
        results[result.batch_id].append(result)
    states = release.release_states(session, ids)
    alerts = batches.alerts(session, ids)
    plans = clinic.planned_public(session, clinic.planned(session, ids))
    by_dose_code = {p.dose_code: p for p in plans}
    open_deviations: dict[int, list[str]] = {batch_id: [] for batch_id in ids}
    open_results: set[int] = set()
    for batch_id, number, qc_result_id in session.execute(
        select(Deviation.batch_id, Deviation.number, Deviation.qc_result_id).where(
            col(Deviation.batch_id).in_(ids),
            col(Deviation.status).in_([s.value for s in UNRESOLVED]),
        )
    ):
        open_deviations[batch_id].append(number)
        if qc_result_id is not None:
            open_results.add(qc_result_id)
    doses = _doses(session, ids, by_dose_code)
    facts = {}
    for batch in batch_list:
        batch_id = batch.id or 0
        outcomes = [r.outcome for r in qc.current(results[batch_id]).values()]
        facts[batch_id] = _Facts(
            batch=batch,
            tests=counts.get(batch.specification_id or current_spec, 0),
            passed=outcomes.count(Outcome.PASS.value),
            failed=outcomes.count(Outcome.FAIL.value),
            state=states.get(batch_id),
            doses=doses[batch_id],
            deviations=open_deviations[batch_id],
            alerts=[a.message for a in alerts[batch_id]],
            holding_alerts=[a.message for a in alerts[batch_id] if a.qc_result_id in open_results],
            planned=[p for p in plans if p.batch_id == batch_id],
        )
    return facts


def _readiness(f: _Facts) -> str | None:
    """Why no dose of the batch can be infused now (None: one can)."""
    status = BatchStatus(f.batch.status)
    if status is BatchStatus.COMPLETED:
        return "every dose infused or disposed"
    if status in (BatchStatus.REJECTED, BatchStatus.DESTROYED):
        return f"batch {status.value}"
    if status is BatchStatus.ON_HOLD:
        # An alert explains the hold only while its result's deviation is open (a resolved
        # late failure must not stand for a later, different hold).
        held = (
            f.holding_alerts[-1]
            if f.holding_alerts
            else f"deviation(s) {', '.join(f.deviations)} open"
            if f.deviations
            else "held by QA"  # a hold placed by hand, no deviation behind it
        )
        return f"on hold: {held}"
    if status in MANUFACTURING:
        return f"in manufacturing ({status.value})"
    if status is BatchStatus.QUARANTINE:
        if f.passed < f.tests:
            return f"QC {f.passed} of {f.tests} complete" + (
                f", {f.failed} failed" if f.failed else ""
            )
        return "QC complete; awaiting QA release"
    if status not in SUPPLIED_STATES or f.state is None:
        return f"batch {status.value}"
    if not f.state.supplies:
        return f.state.describe()
    usable = [d for d in f.doses if d.status != VesselStatus.INFUSED]
    if not usable:
        return "every dose infused"
    at_clinic = [d for d in usable if d.at_clinic]
    if not at_clinic:
        travelling = any(d.status == VesselStatus.DISPATCHED for d in usable)
        return (
            "dose dispatched, not yet received at clinic"
            if travelling
            else "dose not yet received at clinic"
        )
    if all(d.expired for d in at_clinic):
        return "dose at clinic expired"
    return None


def _waiting(biopsy: Biopsy) -> str:
    """Why a patient whose newest biopsy has no batch yet cannot be infused."""
    if biopsy.received_at is None:
        return "biopsy not yet received at the lab"
    if biopsy.accepted is False:
        return "biopsy rejected at receipt"
    return "biopsy received; batch not registered yet"


def readiness(
    session: Session, settings: Settings, *, limit: int = PAGE_SIZE, offset: int = 0
) -> BoardPage:
    """One page of the board, one row per patient in treatment (newest biopsy), nearest an
    infusion first, in a fixed number of queries however many patients and batches exist."""
    shown_for = timedelta(days=settings.board_ended_days)
    total, patients = _page(session, shown_for=shown_for, limit=limit, offset=offset)
    batch_list = [batch for _, _, batch in patients if batch is not None]
    facts = _facts(session, settings, batch_list) if batch_list else {}
    rows = []
    for patient, biopsy, batch in patients:
        f = facts.get(batch.id or 0) if batch is not None else None
        reason = _readiness(f) if f is not None else _waiting(biopsy)
        rows.append(
            ReadinessRow(
                patient_id=patient.id or 0,
                mrn=patient.mrn,
                batch_id=batch.id if batch else None,
                status=batch.status if batch else None,
                ready=reason is None,
                reason=reason,
                doses=f.doses if f else [],
                patient_name=f"{patient.family_name}, {patient.given_name}",
                batch_number=batch.batch_number if batch else None,
                biopsy_collected_at=biopsy.collected_at,
                qc_passed=f.passed if f else 0,
                qc_total=f.tests if f else 0,
                release=f.state.describe() if f and f.state else None,
                alerts=f.alerts if f else [],
                planned_infusions=f.planned if f else [],
            )
        )
    return BoardPage(rows=rows, total=total, limit=limit, offset=offset)
