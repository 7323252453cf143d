"""QA's release decision (REL-1..4): gate, four-eyes, e-signature, in one transaction on a locked
batch, so two QA users deciding at the same moment leave exactly one decision."""

import json
from dataclasses import dataclass
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
from app.clock import in_future
from app.config import Settings
from app.deviations import service as deviations
from app.deviations.models import Deviation
from app.errors import Forbidden, GateNotMet, InvalidRequest, InvalidState
from app.lifecycle import transition
from app.notifications import service as notifications
from app.qc import service as qc
from app.qc.evaluation import Outcome
from app.qc.models import QcResult
from app.release.gate import DECISIONS, check_pending_names, evaluate_gate, involvement, reconcile
from app.release.models import PhysicianAcceptance, ReleaseDecision
from app.release.schemas import (
    Decision,
    PhysicianAcceptanceCreate,
    PhysicianAcceptancePublic,
    ReleaseCreate,
    ReleasePublic,
)
from app.signatures import service as signatures
from app.signatures.schemas import Meaning, SignedRecord
from app.vessels.models import Vessel


def decide(
    session: Session, settings: Settings, *, actor: User, batch_id: int, data: ReleaseCreate
) -> ReleaseDecision:
    """Release, conditionally release or reject batch `batch_id`, e-signed by `actor`."""
    rule = DECISIONS[data.decision]
    context = batches.get(session, batch_id, lock=True)
    signer = signatures.authenticate(
        settings,
        user=actor,
        password=data.password,
        meaning=data.meaning or _default_meaning(data.decision),
        comment=data.comment,
        record_type=SignedRecord.RELEASE,
        record_id=None,
    )
    did = involvement(session, actor.id or 0, context.batch)
    if did:
        raise Forbidden(
            f"You {' and '.join(did)} of batch {context.batch.batch_number}; a QA person who "
            "did neither must take this decision (four-eyes, REL-4)."
        )
    status = BatchStatus(context.batch.status)
    if status not in rule.from_states:
        allowed = ", ".join(sorted(rule.from_states))
        raise InvalidState(
            f"Batch {context.batch.batch_number} is {status}; a {data.decision} is taken only "
            f"when it is {allowed}."
        )
    latest = release_states(session, [batch_id]).get(batch_id)
    if status is BatchStatus.ISSUED and (latest is None or not latest.conditional):
        raise InvalidState(
            f"Batch {context.batch.batch_number} is issued and fully released already."
        )
    target = BatchStatus.ISSUED if status is BatchStatus.ISSUED else rule.target
    spec, tests = qc.specification_of(session, settings, context.batch)
    current = qc.current(qc.history(session, batch_id))
    pending = check_pending_names(data.decision, data.pending_tests, tests, current)
    acceptance = latest_acceptance(session, batch_id)
    findings = evaluate_gate(
        tests=tests,
        current=current,
        pending_named=pending,
        unresolved=deviations.unresolved(session, batch_id),
        reconciliation=reconcile(session, batch_id),
        physician_accepted=(
            frozenset(json.loads(acceptance.out_of_specification_tests))
            if acceptance is not None and data.decision is Decision.RELEASE
            else frozenset()
        ),
    )
    if rule.gated and findings.problems:
        raise GateNotMet(
            f"Batch {context.batch.batch_number} cannot be {rule.target.replace('_', ' ')}: "
            + "; ".join(findings.problems)
            + "."
        )
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
            "specification_version": spec.version,
        },
        reason=data.comment,
    )
    return release


def _default_meaning(decision: Decision) -> Meaning:
    return Meaning.APPROVED if decision is Decision.REJECT else Meaning.RELEASED


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


def latest_acceptance(session: Session, batch_id: int) -> PhysicianAcceptance | None:
    return session.execute(
        select(PhysicianAcceptance)
        .where(PhysicianAcceptance.batch_id == batch_id)
        .order_by(col(PhysicianAcceptance.id).desc())
        .limit(1)
    ).scalar_one_or_none()


def record_acceptance(
    session: Session, *, actor: User, batch_id: int, data: PhysicianAcceptanceCreate
) -> PhysicianAcceptance:
    """The treating physician's documented request/acceptance of a conditionally released or
    out-of-specification batch (EU GMP Part IV §11.5)."""
    context = batches.get(session, batch_id, lock=True)
    status = BatchStatus(context.batch.status)
    if status in FINAL:
        raise InvalidState(f"Batch {context.batch.batch_number} is {status}; it is not supplied.")
    if in_future(data.accepted_at):
        raise InvalidRequest("The acceptance time is in the future.")
    failing = sorted(
        test
        for test, result in qc.current(qc.history(session, batch_id)).items()
        if result.outcome == Outcome.FAIL
    )
    acceptance = PhysicianAcceptance(
        batch_id=batch_id,
        physician_name=data.physician_name,
        accepted_at=data.accepted_at,
        note=data.note,
        out_of_specification_tests=json.dumps(failing),
        recorded_by=actor.id or 0,
    )
    session.add(acceptance)
    session.flush()
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
            "batch_status": status.value,
            "out_of_specification_tests": failing,
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
    return [acceptance_public(r, people[r.recorded_by]) for r in rows]


def acceptance_public(row: PhysicianAcceptance, recorded_by: str) -> PhysicianAcceptancePublic:
    return PhysicianAcceptancePublic(
        id=row.id or 0,
        batch_id=row.batch_id,
        physician_name=row.physician_name,
        accepted_at=row.accepted_at,
        note=row.note,
        out_of_specification_tests=json.loads(row.out_of_specification_tests),
        recorded_by=recorded_by,
        recorded_at=row.recorded_at,
    )


@dataclass(frozen=True)
class ReleaseState:
    """What the clinic needs of QA's decisions on a batch, and of its results since."""

    decision: Decision
    pending_tests: list[str]
    physician_accepted: bool  # an acceptance is recorded for the batch
    failing_tests: list[str]  # tests whose result in force fails, now
    accepted_failures: list[str]  # failing tests the latest acceptance was recorded after

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
    accepted (three queries)."""
    if not batch_ids:
        return {}
    latest: dict[int, ReleaseDecision] = {}
    for row in session.execute(
        select(ReleaseDecision)
        .where(col(ReleaseDecision.batch_id).in_(batch_ids))
        .order_by(col(ReleaseDecision.id))
    ).scalars():
        latest[row.batch_id] = row
    acceptance: dict[int, PhysicianAcceptance] = {}
    for row in session.execute(
        select(PhysicianAcceptance)
        .where(col(PhysicianAcceptance.batch_id).in_(batch_ids))
        .order_by(col(PhysicianAcceptance.id))
    ).scalars():
        acceptance[row.batch_id] = row
    results: dict[int, list[QcResult]] = {batch_id: [] for batch_id in batch_ids}
    for result in session.execute(
        select(QcResult).where(col(QcResult.batch_id).in_(batch_ids)).order_by(col(QcResult.id))
    ).scalars():
        results[result.batch_id].append(result)
    states = {}
    for batch_id, row in latest.items():
        failing = sorted(
            test
            for test, result in qc.current(results[batch_id]).items()
            if result.outcome == Outcome.FAIL
        )
        accepted = acceptance.get(batch_id)
        states[batch_id] = ReleaseState(
            decision=Decision(row.decision),
            pending_tests=json.loads(row.pending_tests),
            physician_accepted=accepted is not None,
            failing_tests=failing,
            accepted_failures=json.loads(accepted.out_of_specification_tests) if accepted else [],
        )
    return states
