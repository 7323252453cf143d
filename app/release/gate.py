"""What a release decision may be taken on: the decisions as a table, four-eyes (REL-4), the
chain-of-identity reconciliation, reviews of critical results and the gate itself as a list of
checks (REL-1, REL-2, REL-6)."""

from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import func, select
from sqlmodel import Session, col

from app.batches.models import Batch
from app.batches.states import BatchStatus
from app.deviations.models import Deviation
from app.errors import InvalidRequest
from app.qc import service as qc
from app.qc.evaluation import Outcome
from app.qc.models import QcResult
from app.release.schemas import Decision
from app.signatures import service as signatures
from app.signatures.schemas import Meaning, SignedRecord
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


class Check(StrEnum):
    """The conditions of a decision, in the order the checklist shows them."""

    FOUR_EYES = "four_eyes"  # REL-4: the signer did nothing on the batch
    STATUS = "status"  # the batch is in a state the decision is taken from
    RESULTS_COMPLETE = "results_complete"  # REL-1: every test has a result (or is named pending)
    WITHIN_SPECIFICATION = "within_specification"  # REL-1, or accepted by the physician
    DEVIATIONS_CLOSED = "deviations_closed"  # REL-1
    RECONCILIATION = "reconciliation"  # REL-1: every vessel accounted for
    DOSE_TO_RELEASE = "dose_to_release"
    CRITICAL_RESULTS_REVIEWED = "critical_results_reviewed"  # REL-6
    DOSES_LABELLED = "doses_labelled"  # REL-6


# Refused with their own status before the gate's 409: four-eyes 403, status 409 invalid_state.
PRECONDITIONS = frozenset({Check.FOUR_EYES, Check.STATUS})


@dataclass(frozen=True)
class GateCheck:
    check: Check
    met: bool
    detail: str


@dataclass
class GateFindings:
    checks: list[GateCheck] = field(default_factory=list)
    out_of_specification: bool = False

    def add(self, check: Check, met: bool, detail: str) -> None:
        self.checks.append(GateCheck(check, met, detail))

    def unmet(self, check: Check) -> GateCheck | None:
        return next((c for c in self.checks if c.check is check and not c.met), None)

    @property
    def problems(self) -> list[str]:
        """What stands between the batch and the decision beyond its preconditions."""
        return [c.detail for c in self.checks if not c.met and c.check not in PRECONDITIONS]

    @property
    def ready(self) -> bool:
        return all(c.met for c in self.checks)


def unreviewed_critical(
    session: Session, tests: list[SpecificationTest], current: dict[str, QcResult]
) -> list[str]:
    """Critical tests whose result in force lacks a review (REL-6): a `reviewed` signature by
    someone other than its author that still matches the result (SIG-3, SIG-4); each by the
    specification's name for it, as a person reads it."""
    named = [(t.name, current[t.test]) for t in tests if t.critical and t.test in current]
    results = [result for _, result in named]
    reviews = signatures.of_records(session, SignedRecord.QC_RESULT, [r.id or 0 for r in results])
    return [
        name
        for name, result in named
        if not any(
            s.meaning == Meaning.REVIEWED
            and s.user_id != result.entered_by
            and s.record_hash == signatures.record_hash(qc.content(result))
            for s in reviews[result.id or 0]
        )
    ]


@dataclass(frozen=True)
class GateFacts:
    """Everything a decision on a batch is judged on, read in one place (`release.service.assess`)
    for the decision and for the checklist alike."""

    batch_number: str
    status: BatchStatus
    fully_released: bool  # issued, and its latest decision was a full release
    involvement: list[str]  # what the signer did on the batch (REL-4)
    tests: list[SpecificationTest]
    current: dict[str, QcResult]
    pending_named: list[str]
    unresolved: list[Deviation]
    reconciliation: Reconciliation
    physician_accepted: frozenset[str]
    unreviewed: list[str]
    unlabelled: list[str]


def evaluate_gate(decision: Decision, facts: GateFacts) -> GateFindings:
    """Every condition of `decision` on the batch, met or not, each with its sentence (REL-1,
    REL-2, REL-4, REL-6, Part IV §11.5). The release and the checklist both use this."""
    rule = DECISIONS[decision]
    findings = GateFindings()
    did = facts.involvement
    findings.add(
        Check.FOUR_EYES,
        not did,
        f"You {' and '.join(did)} of batch {facts.batch_number}; a QA person who did neither "
        "must take this decision (four-eyes, REL-4)."
        if did
        else f"You registered, processed and tested nothing of batch {facts.batch_number}.",
    )
    allowed = ", ".join(sorted(rule.from_states))
    in_state = facts.status in rule.from_states and not (
        facts.status is BatchStatus.ISSUED and facts.fully_released
    )
    findings.add(
        Check.STATUS,
        in_state,
        f"Batch {facts.batch_number} is {facts.status}."
        if in_state
        else f"Batch {facts.batch_number} is issued and fully released already."
        if facts.status is BatchStatus.ISSUED and facts.status in rule.from_states
        else f"Batch {facts.batch_number} is {facts.status}; a {decision} is taken only when "
        f"it is {allowed}.",
    )
    if rule.gated:
        _gate(findings, facts)
    return findings


def _gate(findings: GateFindings, facts: GateFacts) -> None:
    tests, current = facts.tests, facts.current
    failed = [
        t.test for t in tests if t.test in current and current[t.test].outcome == Outcome.FAIL
    ]
    pending = [t.test for t in tests if t.test not in current and t.test not in facts.pending_named]
    findings.add(
        Check.RESULTS_COMPLETE,
        not pending,
        f"no result yet: {', '.join(pending)}"
        if pending
        else "every test has a result"
        + (f" but {', '.join(facts.pending_named)}, named pending" if facts.pending_named else ""),
    )
    accepted = bool(failed) and set(failed) <= facts.physician_accepted
    findings.out_of_specification = accepted
    findings.add(
        Check.WITHIN_SPECIFICATION,
        not failed or accepted,
        f"out of specification: {', '.join(failed)}, accepted by the treating physician after "
        "these results"
        if accepted
        else f"out of specification: {', '.join(failed)} (a release only at the treating "
        "physician's documented request, recorded after these results)"
        if failed
        else "no result in force fails its limit",
    )
    unresolved = facts.unresolved
    findings.add(
        Check.DEVIATIONS_CLOSED,
        not unresolved,
        f"deviation(s) not closed: {', '.join(d.number for d in unresolved)}"
        if unresolved
        else "no deviation is open",
    )
    reconciliation = facts.reconciliation
    findings.add(
        Check.RECONCILIATION,
        reconciliation.complete,
        f"vessels not accounted for: {', '.join(reconciliation.unaccounted)}"
        if not reconciliation.complete
        else f"all {reconciliation.vessels} vessels accounted for",
    )
    # A dose discarded, or consumed by a later step (cryopreserved, say), is no dose to supply.
    live_doses = [d for d in reconciliation.doses if d.status not in ACCOUNTED_STATUSES]
    findings.add(
        Check.DOSE_TO_RELEASE,
        bool(live_doses),
        f"{len(live_doses)} dose(s) to release"
        if live_doses
        else "the batch has no dose to release",
    )
    findings.add(
        Check.CRITICAL_RESULTS_REVIEWED,
        not facts.unreviewed,
        f"critical results not reviewed by a second person: {', '.join(facts.unreviewed)}"
        if facts.unreviewed
        else "every critical result in force is reviewed by a second person",
    )
    findings.add(
        Check.DOSES_LABELLED,
        not facts.unlabelled,
        f"doses without a printed label: {', '.join(facts.unlabelled)}"
        if facts.unlabelled
        else "every dose in use has a printed label",
    )
