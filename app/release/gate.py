"""What a release decision may be taken on: the decisions as a table, four-eyes (REL-4), the
chain-of-identity reconciliation and the gate itself (REL-1, REL-2)."""

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlmodel import Session, col

from app.batches.models import Batch
from app.batches.states import BatchStatus
from app.deviations.models import Deviation
from app.errors import InvalidRequest
from app.qc.evaluation import Outcome
from app.qc.models import QcResult
from app.release.schemas import Decision
from app.specifications.models import SpecificationTest
from app.steps.models import Step
from app.vessels.models import Vessel
from app.vessels.states import VesselKind, VesselStatus

B = BatchStatus


@dataclass(frozen=True)
class DecisionRule:
    target: BatchStatus
    from_states: frozenset[BatchStatus]
    gated: bool  # REL-1 applies
    pending_allowed: bool  # names tests still pending (REL-2)


DECISIONS: dict[Decision, DecisionRule] = {
    # From `issued`: the full release of a conditionally released batch already dispatched; the
    # batch stays issued.
    Decision.RELEASE: DecisionRule(
        B.RELEASED, frozenset({B.QUARANTINE, B.CONDITIONALLY_RELEASED, B.ISSUED}), True, False
    ),
    Decision.CONDITIONAL_RELEASE: DecisionRule(
        B.CONDITIONALLY_RELEASED, frozenset({B.QUARANTINE}), True, True
    ),
    Decision.REJECT: DecisionRule(
        B.REJECTED, frozenset({B.QUARANTINE, B.CONDITIONALLY_RELEASED, B.ON_HOLD}), False, False
    ),
}

ACCOUNTED_STATUSES = frozenset({VesselStatus.CONSUMED, VesselStatus.DISCARDED})


def involvement(session: Session, user_id: int, batch: Batch) -> list[str]:
    """What `user_id` did on the batch that bars them from releasing it (SIG-4, REL-4)."""
    did = ["registered the batch"] if batch.created_by == user_id else []
    steps = session.execute(
        select(func.count())
        .select_from(Step)
        .where(Step.batch_id == batch.id, Step.performed_by == user_id)
    ).scalar_one()
    results = session.execute(
        select(func.count())
        .select_from(QcResult)
        .where(QcResult.batch_id == batch.id, QcResult.entered_by == user_id)
    ).scalar_one()
    if steps:
        did.append(f"performed {steps} step(s)")
    if results:
        did.append(f"entered {results} QC result(s)")
    return did


@dataclass(frozen=True)
class Reconciliation:
    """Every vessel of the batch accounted for: consumed, discarded, a dose or a QC sample."""

    vessels: int
    unaccounted: list[str]
    doses: list[Vessel]

    @property
    def complete(self) -> bool:
        return not self.unaccounted


def reconcile(session: Session, batch_id: int) -> Reconciliation:
    vessels = list(
        session.execute(
            select(Vessel).where(Vessel.batch_id == batch_id).order_by(col(Vessel.sequence))
        ).scalars()
    )
    unaccounted = [
        f"{v.code} ({v.kind}, {v.status})"
        for v in vessels
        if v.status not in ACCOUNTED_STATUSES and not v.is_dose and v.kind != VesselKind.QC_SAMPLE
    ]
    return Reconciliation(
        vessels=len(vessels), unaccounted=unaccounted, doses=[v for v in vessels if v.is_dose]
    )


def check_pending_names(
    decision: Decision, named: list[str], tests: list[SpecificationTest], current: dict
) -> list[str]:
    """The tests a conditional release names as pending: known, without a result, at least one."""
    rule = DECISIONS[decision]
    names = [name.strip().lower() for name in named]
    if not rule.pending_allowed:
        if names:
            raise InvalidRequest(f"A {decision} names no pending tests.")
        return []
    if not names:
        raise InvalidRequest("A conditional release names the tests still pending.")
    known = {t.test for t in tests}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidRequest(f"Not tests of the batch's specification: {', '.join(unknown)}.")
    done = [n for n in names if n in current]
    if done:
        raise InvalidRequest(f"Already have a result, so are not pending: {', '.join(done)}.")
    return sorted(set(names))


@dataclass
class GateFindings:
    problems: list[str] = field(default_factory=list)
    out_of_specification: bool = False


def evaluate_gate(
    *,
    tests: list[SpecificationTest],
    current: dict[str, QcResult],
    pending_named: list[str],
    unresolved: list[Deviation],
    reconciliation: Reconciliation,
    physician_accepted: frozenset[str],
) -> GateFindings:
    """Everything that stands between the batch and the decision (REL-1, REL-2, Part IV §11.5)."""
    findings = GateFindings()
    failed = [
        t.test for t in tests if t.test in current and current[t.test].outcome == Outcome.FAIL
    ]
    pending = [t.test for t in tests if t.test not in current and t.test not in pending_named]
    if failed and set(failed) <= physician_accepted:
        findings.out_of_specification = True
    elif failed:
        findings.problems.append(
            f"out of specification: {', '.join(failed)} (a release only at the treating "
            "physician's documented request, recorded after these results)"
        )
    if pending:
        findings.problems.append(f"no result yet: {', '.join(pending)}")
    if unresolved:
        findings.problems.append(
            f"deviation(s) not closed: {', '.join(d.number for d in unresolved)}"
        )
    if not reconciliation.complete:
        findings.problems.append(
            f"vessels not accounted for: {', '.join(reconciliation.unaccounted)}"
        )
    # A dose discarded, or consumed by a later step (cryopreserved, say), is no dose to supply.
    live_doses = [d for d in reconciliation.doses if d.status not in ACCOUNTED_STATUSES]
    if not live_doses:
        findings.problems.append("the batch has no dose to release")
    return findings
