"""QA's release decision (REL-1..4): gate, four-eyes, e-signature, in one transaction on a locked
batch, so two QA users deciding at the same moment leave exactly one decision."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth import service as auth
from app.auth.models import User
from app.batches import service as batches
from app.batches.service import BatchContext
from app.batches.states import BATCH_LIFECYCLE, FINAL, BatchStatus
from app.clock import CLOCK_SKEW, as_utc, in_future
from app.config import Settings
from app.deviations import service as deviations
from app.deviations.models import Deviation
from app.errors import (
    Forbidden,
    GateNotMet,
    HomewardError,
    InvalidRequest,
    InvalidState,
    NothingToAccept,
    Told,
)
from app.labels.gate import unlabelled_doses
from app.lifecycle import transition
from app.notifications import service as notifications
from app.qc import service as qc
from app.qc.evaluation import Outcome
from app.qc.models import QcResult
from app.release.gate import (
    DECISIONS,
    Check,
    GateFacts,
    GateFindings,
    check_pending_names,
    evaluate_gate,
    involvement,
    reconcile,
    unreviewed_critical,
)
from app.release.models import PhysicianAcceptance, ReleaseDecision
from app.release.schemas import (
    Decision,
    GateCheckPublic,
    PhysicianAcceptanceCreate,
    PhysicianAcceptancePublic,
    ReleaseCreate,
    ReleaseGatePublic,
    ReleasePublic,
)
from app.signatures import service as signatures
from app.signatures.models import Signature
from app.signatures.schemas import Meaning, SignedRecord
from app.specifications.models import Specification
from app.vessels.models import Vessel

# The meaning each decision is signed with (SIG-6): a release is `released`, a rejection `rejected`.
MEANINGS: dict[Decision, Meaning] = {
    Decision.RELEASE: Meaning.RELEASED,
    Decision.CONDITIONAL_RELEASE: Meaning.RELEASED,
    Decision.REJECT: Meaning.REJECTED,
}


@dataclass(frozen=True)
class Assessment:
    """A decision's conditions on a batch and what it would be taken on."""

    findings: GateFindings
    specification: Specification
    current: dict[str, QcResult]
    pending: list[str]
    acceptance: PhysicianAcceptance | None
    # Tests wrongly named pending: refused after the preconditions (four-eyes, status).
    pending_error: InvalidRequest | None


def assess(
    session: Session,
    settings: Settings,
    *,
    actor: User,
    context: BatchContext,
    decision: Decision,
    pending_tests: list[str],
) -> Assessment:
    """Every condition of `decision` by `actor` on the batch, read once: the decision refuses
    on exactly what the checklist shows (REL-6)."""
    batch_id = context.batch.id or 0
    latest = release_states(session, [batch_id]).get(batch_id)
    spec, tests = qc.specification_of(session, settings, context.batch)
    current = qc.current(qc.history(session, batch_id))
    pending_error = None
    try:
        pending = check_pending_names(decision, pending_tests, tests, current)
    except InvalidRequest as exc:
        pending, pending_error = [], exc
    acceptance = latest_acceptance(session, batch_id)
    facts = GateFacts(
        batch_number=context.batch.batch_number,
        status=BatchStatus(context.batch.status),
        fully_released=latest is None or not latest.conditional,
        involvement=involvement(session, actor.id or 0, context.batch),
        tests=tests,
        current=current,
        pending_named=pending,
        unresolved=deviations.unresolved(session, batch_id),
        reconciliation=reconcile(session, batch_id),
        physician_accepted=(
            frozenset(latest_accepted_failures(session, batch_id, current))
            if decision is Decision.RELEASE
            else frozenset()
        ),
        unreviewed=unreviewed_critical(session, tests, current),
        unlabelled=unlabelled_doses(session, batch_id),
    )
    return Assessment(
        evaluate_gate(decision, facts), spec, current, pending, acceptance, pending_error
    )


def checklist(
    session: Session,
    settings: Settings,
    *,
    actor: User,
    batch_id: int,
    decision: Decision,
    pending_tests: list[str],
) -> ReleaseGatePublic:
    """The gate of `decision` as `actor` would meet it now, condition by condition (REL-6)."""
    context = batches.get(session, batch_id)
    assessed = assess(
        session,
        settings,
        actor=actor,
        context=context,
        decision=decision,
        pending_tests=pending_tests,
    )
    if assessed.pending_error is not None:
        raise assessed.pending_error
    found = assessed.findings
    return ReleaseGatePublic(
        batch_id=batch_id,
        batch_number=context.batch.batch_number,
        decision=decision,
        ready=found.ready,
        checks=[GateCheckPublic(check=c.check, met=c.met, detail=c.detail) for c in found.checks],
    )


def decide(
    session: Session, settings: Settings, *, actor: User, batch_id: int, data: ReleaseCreate
) -> ReleaseDecision:
    """Release, conditionally release or reject batch `batch_id`, e-signed by `actor` with the
    meaning of the act (SIG-6)."""
    rule = DECISIONS[data.decision]
    meaning = MEANINGS[data.decision]
    if data.meaning is not None and data.meaning is not meaning:
        raise InvalidRequest(
            f"A {data.decision.value.replace('_', ' ')} is signed with the meaning "
            f"{meaning.value!r}, not {data.meaning.value!r} (SIG-6)."
        )
    context = batches.get(session, batch_id, lock=True)
    signer = signatures.authenticate(
        session,
        settings,
        user=actor,
        password=data.password,
        meaning=meaning,
        comment=data.comment,
        record_type=SignedRecord.RELEASE,
        record_id=None,
    )
    found = assess(
        session,
        settings,
        actor=actor,
        context=context,
        decision=data.decision,
        pending_tests=data.pending_tests,
    )
    findings, current, pending, acceptance = (
        found.findings,
        found.current,
        found.pending,
        found.acceptance,
    )
    refused = findings.unmet(Check.FOUR_EYES)
    if refused:
        raise Forbidden(refused.detail)
    refused = findings.unmet(Check.STATUS)
    if refused:
        raise InvalidState(refused.detail)
    if found.pending_error is not None:
        raise found.pending_error
    if rule.gated and findings.problems:
        raise GateNotMet(
            f"Batch {context.batch.batch_number} cannot be {rule.target.replace('_', ' ')}: "
            + "; ".join(findings.problems)
            + "."
        )
    status = BatchStatus(context.batch.status)
    target = BatchStatus.ISSUED if status is BatchStatus.ISSUED else rule.target
    out_of_spec = rule.gated and findings.out_of_specification
    if target is not status:
        transition(
            session,
            BATCH_LIFECYCLE,
            context.batch,
            target,
            actor=actor,
            coi=context.patient.coi,
            label=f"Batch {context.batch.batch_number}",
            reason=data.comment,
            extra={"decision": data.decision.value},
        )
    release = ReleaseDecision(
        batch_id=batch_id,
        decision=data.decision.value,
        status=target.value,
        pending_tests=json.dumps(pending),
        result_ids=json.dumps(sorted(r.id or 0 for r in current.values())),
        deviation_ids=json.dumps([d.id for d in _deviations_of(session, batch_id)]),
        out_of_specification=out_of_spec,
        physician_acceptance_id=acceptance.id if out_of_spec and acceptance else None,
        comment=data.comment,
        decided_by=actor.id or 0,
    )
    session.add(release)
    session.flush()
    signed = content(session, context, release)
    signatures.apply(
        session,
        signer,
        record_type=SignedRecord.RELEASE,
        record_id=release.id or 0,
        content=signed,
        coi=context.patient.coi,
    )
    if data.decision is not Decision.REJECT:
        notifications.enqueue(
            session,
            settings,
            event="batch.released",
            payload={
                "batch_id": batch_id,
                "batch_number": context.batch.batch_number,
                "din": context.biopsy.din,
                "coi": context.patient.coi,
                "decision": data.decision.value,
                "status": target.value,
                "pending_tests": pending,
                "out_of_specification": out_of_spec,
            },
            coi=context.patient.coi,
            batch_id=batch_id,
        )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.RELEASE_DECIDED,
        entity_type=EntityType.RELEASE,
        entity_id=release.id,
        coi=context.patient.coi,
        new={
            "batch_id": batch_id,
            "decision": data.decision.value,
            "status": target.value,
            "pending_tests": pending,
            "out_of_specification": out_of_spec,
            "specification_version": found.specification.version,
        },
        reason=data.comment,
    )
    return release


def _deviations_of(session: Session, batch_id: int) -> list[Deviation]:
    return list(
        session.execute(
            select(Deviation).where(Deviation.batch_id == batch_id).order_by(col(Deviation.id))
        ).scalars()
    )


def content(session: Session, context: BatchContext, release: ReleaseDecision) -> dict[str, Any]:
    """The canonical content of a decision: the batch's identity, the decision and every record
    it was taken on (results, deviations, doses). Its signature covers all of it (SIG-3)."""
    result_ids = json.loads(release.result_ids)
    deviation_ids = json.loads(release.deviation_ids)
    results = (
        session.execute(
            select(QcResult).where(col(QcResult.id).in_(result_ids)).order_by(col(QcResult.id))
        ).scalars()
        if result_ids
        else []
    )
    found_deviations = (
        session.execute(
            select(Deviation)
            .where(col(Deviation.id).in_(deviation_ids))
            .order_by(col(Deviation.id))
        ).scalars()
        if deviation_ids
        else []
    )
    doses = session.execute(
        select(Vessel)
        .where(Vessel.batch_id == release.batch_id, col(Vessel.is_dose).is_(True))
        .order_by(col(Vessel.sequence))
    ).scalars()
    return {
        "record": "release",
        "id": release.id,
        "batch_id": release.batch_id,
        "batch_number": context.batch.batch_number,
        "din": context.biopsy.din,
        "coi": context.patient.coi,
        "specification_id": context.batch.specification_id,
        "decision": release.decision,
        "status": release.status,
        "pending_tests": json.loads(release.pending_tests),
        "out_of_specification": release.out_of_specification,
        "physician_acceptance_id": release.physician_acceptance_id,
        "comment": release.comment,
        "decided_by": release.decided_by,
        "decided_at": release.decided_at,
        "results": [qc.content(result) for result in results],
        "deviations": [deviations.content(deviation) for deviation in found_deviations],
        "doses": [
            {
                "code": dose.code,
                "cell_count": dose.cell_count,
                "volume_ml": dose.volume_ml,
                "expires_at": dose.expires_at,
            }
            for dose in doses
        ],
    }


def decisions(session: Session, batch_id: int) -> list[ReleasePublic]:
    """Every decision on the batch, oldest first, each with its signature and whether the
    records it covers still match what was signed."""
    context = batches.get(session, batch_id)
    rows = list(
        session.execute(
            select(ReleaseDecision)
            .where(ReleaseDecision.batch_id == batch_id)
            .order_by(col(ReleaseDecision.id))
        ).scalars()
    )
    signed = signatures.of_records(session, SignedRecord.RELEASE, [r.id or 0 for r in rows])
    people = auth.usernames(session, [r.decided_by for r in rows])
    return [
        ReleasePublic(
            id=r.id or 0,
            batch_id=batch_id,
            batch_number=context.batch.batch_number,
            decision=Decision(r.decision),
            status=BatchStatus(r.status),
            pending_tests=json.loads(r.pending_tests),
            result_ids=json.loads(r.result_ids),
            out_of_specification=r.out_of_specification,
            physician_acceptance_id=r.physician_acceptance_id,
            comment=r.comment,
            decided_by=people[r.decided_by],
            decided_at=r.decided_at,
            signature=signatures.public(signed[r.id or 0][0], content(session, context, r)),
        )
        for r in rows
    ]


def decision_public(session: Session, release: ReleaseDecision) -> ReleasePublic:
    (view,) = [d for d in decisions(session, release.batch_id) if d.id == release.id]
    return view


def acceptance_content(row: PhysicianAcceptance) -> dict[str, Any]:
    """The canonical content of a physician's acceptance: what its signature covers (SIG-3)."""
    return {
        "record": "physician_acceptance",
        "id": row.id,
        "batch_id": row.batch_id,
        "physician_name": row.physician_name,
        "accepted_at": row.accepted_at,
        "note": row.note,
        "out_of_specification_tests": json.loads(row.out_of_specification_tests),
        "recorded_by": row.recorded_by,
        "recorded_at": row.recorded_at,
    }


@dataclass(frozen=True)
class SignedAcceptance:
    """An acceptance with its signature (SIG-6): `approved`, by the clinician who recorded it,
    and still matching the record."""

    row: PhysicianAcceptance
    signed_at: datetime

    def accepted_failures(self, current: dict[str, QcResult]) -> list[str]:
        """The failing results in force this acceptance was signed after (and names)."""
        return sorted(
            test
            for test in json.loads(self.row.out_of_specification_tests)
            if test in current
            and current[test].outcome == Outcome.FAIL
            and as_utc(current[test].entered_at) <= self.signed_at
        )


def signed_acceptances(session: Session, batch_ids: list[int]) -> dict[int, SignedAcceptance]:
    """The latest validly signed acceptance of each batch (two queries); an acceptance with no
    signature, or whose record changed since, counts for nothing."""
    rows = list(
        session.execute(
            select(PhysicianAcceptance)
            .where(col(PhysicianAcceptance.batch_id).in_(batch_ids))
            .order_by(col(PhysicianAcceptance.id))
        ).scalars()
    )
    signed = signatures.of_records(
        session, SignedRecord.PHYSICIAN_ACCEPTANCE, [r.id or 0 for r in rows]
    )
    found: dict[int, SignedAcceptance] = {}
    for row in rows:
        digest = signatures.record_hash(acceptance_content(row))
        for signature in signed[row.id or 0]:
            if (
                signature.meaning == Meaning.APPROVED
                and signature.user_id == row.recorded_by
                and signature.record_hash == digest
            ):
                found[row.batch_id] = SignedAcceptance(row, as_utc(signature.signed_at))
    return found


def latest_acceptance(session: Session, batch_id: int) -> PhysicianAcceptance | None:
    """The batch's latest validly signed acceptance."""
    found = signed_acceptances(session, [batch_id]).get(batch_id)
    return found.row if found else None


def latest_accepted_failures(
    session: Session, batch_id: int, current: dict[str, QcResult]
) -> list[str]:
    """The failing results in force that the latest signed acceptance covers (Part IV §11.5)."""
    found = signed_acceptances(session, [batch_id]).get(batch_id)
    return found.accepted_failures(current) if found else []


CONDITIONAL = "the conditional release"  # what an acceptance covers, as its sentence names it


def _to_accept(
    session: Session, context: BatchContext
) -> tuple[dict[str, QcResult], dict[str, datetime]]:
    """What a physician's acceptance of the batch would cover: its failing results in force and
    each covered act's time; refused for a final batch or one with nothing to accept."""
    batch_id = context.batch.id or 0
    status = BatchStatus(context.batch.status)
    if status in FINAL:
        raise InvalidState(f"Batch {context.batch.batch_number} is {status}; it is not supplied.")
    failing = {
        test: result
        for test, result in qc.current(qc.history(session, batch_id)).items()
        if result.outcome == Outcome.FAIL
    }
    latest = release_states(session, [batch_id]).get(batch_id)
    covered = {f"the failing {test} result": as_utc(r.entered_at) for test, r in failing.items()}
    if latest is not None and latest.conditional:
        covered[CONDITIONAL] = latest.decided_at
    if not covered:
        raise NothingToAccept(
            f"Batch {context.batch.batch_number} has no conditional release and no failing "
            "result: there is nothing for the treating physician to accept yet."
        )
    return failing, covered


def acceptance_refusal(session: Session, context: BatchContext) -> HomewardError | None:
    """Why a physician's acceptance of the batch would be refused now, before any signature,
    or None when there is something to accept (a page offers the form only then)."""
    try:
        _to_accept(session, context)
    except (InvalidState, NothingToAccept) as refusal:
        return refusal
    return None


def record_acceptance(
    session: Session,
    settings: Settings,
    *,
    actor: User,
    batch_id: int,
    data: PhysicianAcceptanceCreate,
) -> PhysicianAcceptance:
    """The treating physician's documented request/acceptance of a conditionally released or
    out-of-specification batch (EU GMP Part IV §11.5), e-signed `approved` by the clinician
    (SIG-6); it covers the conditional release and the failing results in force, so it is
    refused when there is neither, or when `accepted_at` is before what it covers."""
    context = batches.get(session, batch_id, lock=True)
    signer = signatures.authenticate(
        session,
        settings,
        user=actor,
        password=data.password,
        meaning=Meaning.APPROVED,
        comment=data.note,
        record_type=SignedRecord.PHYSICIAN_ACCEPTANCE,
        record_id=None,
    )
    failing, covered = _to_accept(session, context)
    if in_future(data.accepted_at):
        raise InvalidRequest("The acceptance time is in the future.")
    what, since = max(covered.items(), key=lambda item: item[1])
    if data.accepted_at < since - CLOCK_SKEW:
        raise InvalidRequest(
            Told(f"The acceptance time is before {what} it covers ({{since:s}}).", since=since)
        )
    acceptance = PhysicianAcceptance(
        batch_id=batch_id,
        physician_name=data.physician_name,
        accepted_at=data.accepted_at,
        note=data.note,
        out_of_specification_tests=json.dumps(sorted(failing)),
        recorded_by=actor.id or 0,
    )
    session.add(acceptance)
    session.flush()
    signatures.apply(
        session,
        signer,
        record_type=SignedRecord.PHYSICIAN_ACCEPTANCE,
        record_id=acceptance.id or 0,
        content=acceptance_content(acceptance),
        coi=context.patient.coi,
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.PHYSICIAN_ACCEPTANCE_RECORDED,
        entity_type=EntityType.BATCH,
        entity_id=batch_id,
        coi=context.patient.coi,
        new={
            "acceptance_id": acceptance.id,
            "physician_name": data.physician_name,
            "accepted_at": data.accepted_at,
            "note": data.note,
            "batch_status": BatchStatus(context.batch.status).value,
            "out_of_specification_tests": sorted(failing),
            "conditional_release": CONDITIONAL in covered,
        },
    )
    return acceptance


def acceptances(session: Session, batch_id: int) -> list[PhysicianAcceptancePublic]:
    rows = list(
        session.execute(
            select(PhysicianAcceptance)
            .where(PhysicianAcceptance.batch_id == batch_id)
            .order_by(col(PhysicianAcceptance.id))
        ).scalars()
    )
    people = auth.usernames(session, [r.recorded_by for r in rows])
    signed = signatures.of_records(
        session, SignedRecord.PHYSICIAN_ACCEPTANCE, [r.id or 0 for r in rows]
    )
    return [acceptance_public(r, people[r.recorded_by], signed[r.id or 0]) for r in rows]


def acceptance_public(
    row: PhysicianAcceptance, recorded_by: str, signed: list[Signature]
) -> PhysicianAcceptancePublic:
    content = acceptance_content(row)
    return PhysicianAcceptancePublic(
        id=row.id or 0,
        batch_id=row.batch_id,
        physician_name=row.physician_name,
        accepted_at=row.accepted_at,
        note=row.note,
        out_of_specification_tests=json.loads(row.out_of_specification_tests),
        recorded_by=recorded_by,
        recorded_at=row.recorded_at,
        signature=signatures.public(signed[0], content) if signed else None,
    )


def acceptance_view(session: Session, row: PhysicianAcceptance) -> PhysicianAcceptancePublic:
    (view,) = [a for a in acceptances(session, row.batch_id) if a.id == row.id]
    return view


@dataclass(frozen=True)
class ReleaseState:
    """What the clinic needs of QA's decisions on a batch, and of its results since."""

    decision: Decision
    decided_at: datetime
    pending_tests: list[str]
    # A signed acceptance is recorded for the batch (for a conditional release: signed after it).
    physician_accepted: bool
    failing_tests: list[str]  # tests whose result in force fails, now
    accepted_failures: list[str]  # failing results in force the latest acceptance was signed after

    @property
    def conditional(self) -> bool:
        return self.decision is Decision.CONDITIONAL_RELEASE

    @property
    def out_of_specification(self) -> bool:
        return bool(self.failing_tests)

    @property
    def supplies(self) -> bool:
        """May its doses reach a patient (COI-6): released; a conditional release only with the
        treating physician's acceptance; a batch with failing results (at release or since)
        only if the physician's latest acceptance was recorded knowing every one of them
        (EU GMP Part IV §11.5)."""
        if self.decision is Decision.REJECT:
            return False
        if self.conditional and not self.physician_accepted:
            return False
        return set(self.failing_tests) <= set(self.accepted_failures)

    def describe(self) -> str:
        if self.decision is Decision.REJECT:
            return "rejected"
        text = "released"
        if self.conditional:
            text = f"conditionally released ({', '.join(self.pending_tests)} pending)"
        if self.failing_tests:
            text += f", out of specification ({', '.join(self.failing_tests)})"
        if self.conditional or self.failing_tests:
            accepted = (
                "accepted"
                if self.physician_accepted and self.supplies
                else "acceptance of these results not recorded"
                if self.physician_accepted
                else "acceptance not recorded"
            )
            text += f"; treating physician {accepted}"
        return text


def release_states(session: Session, batch_ids: list[int]) -> dict[int, ReleaseState]:
    """The latest decision of each batch, its failing results now and what the physician
    accepted, by a valid signature after what it covers (four queries)."""
    if not batch_ids:
        return {}
    latest: dict[int, ReleaseDecision] = {}
    for row in session.execute(
        select(ReleaseDecision)
        .where(col(ReleaseDecision.batch_id).in_(batch_ids))
        .order_by(col(ReleaseDecision.id))
    ).scalars():
        latest[row.batch_id] = row
    accepted = signed_acceptances(session, batch_ids)
    results: dict[int, list[QcResult]] = {batch_id: [] for batch_id in batch_ids}
    for result in session.execute(
        select(QcResult).where(col(QcResult.batch_id).in_(batch_ids)).order_by(col(QcResult.id))
    ).scalars():
        results[result.batch_id].append(result)
    states = {}
    for batch_id, row in latest.items():
        current = qc.current(results[batch_id])
        failing = sorted(test for test, result in current.items() if result.outcome == Outcome.FAIL)
        acceptance = accepted.get(batch_id)
        decided_at = as_utc(row.decided_at)
        conditional = Decision(row.decision) is Decision.CONDITIONAL_RELEASE
        states[batch_id] = ReleaseState(
            decision=Decision(row.decision),
            decided_at=decided_at,
            pending_tests=json.loads(row.pending_tests),
            physician_accepted=acceptance is not None
            and (not conditional or acceptance.signed_at >= decided_at),
            failing_tests=failing,
            accepted_failures=acceptance.accepted_failures(current) if acceptance else [],
        )
    return states
