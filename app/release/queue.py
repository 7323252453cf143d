"""QA's queue: batches awaiting a decision, deviations to close, critical results awaiting their
second-person review — in a fixed number of queries however many batches."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session, col

from app.audit_review import service as audit_review
from app.audit_review.schemas import PendingPublic
from app.auth import service as auth
from app.batches import service as batches
from app.batches.schemas import BatchSummary
from app.batches.states import BatchStatus
from app.config import Settings
from app.deviations import service as deviations
from app.deviations.schemas import DeviationPublic
from app.qc import service as qc
from app.qc.evaluation import Outcome
from app.qc.models import QcResult
from app.signatures import service as signatures
from app.signatures.schemas import SignedRecord
from app.specifications import service as specifications
from app.specifications.models import SpecificationTest

AWAITING = frozenset(
    {BatchStatus.QUARANTINE, BatchStatus.CONDITIONALLY_RELEASED, BatchStatus.ON_HOLD}
)


@dataclass(frozen=True)
class QueuedBatch:
    batch: BatchSummary
    tests: int
    passed: int
    failed: int


@dataclass(frozen=True)
class AwaitingReview:
    result_id: int
    batch_id: int
    batch_number: str
    test: str  # the specification's name of the test
    value: float | str  # as entered, in `unit`
    unit: str | None
    limit: str
    outcome: str
    entered_by: str


@dataclass(frozen=True)
class Queue:
    batches: list[QueuedBatch]
    deviations: list[DeviationPublic]
    reviews: list[AwaitingReview]
    audit_reviews: PendingPublic  # periods of the audit trail not yet reviewed (AUD-8)
    people: auth.People  # full names of everyone the queue names (display only)


def qa_queue(session: Session, settings: Settings) -> Queue:
    contexts = batches.find(session, statuses=AWAITING)
    ids = [c.batch.id or 0 for c in contexts]
    current_spec = specifications.current_id(session)
    spec_ids = {c.batch.specification_id or current_spec for c in contexts}
    tests = specifications.tests_of(session, sorted(spec_ids))
    results = list(
        session.execute(
            select(QcResult).where(col(QcResult.batch_id).in_(ids)).order_by(col(QcResult.id))
        ).scalars()
    )
    by_batch: dict[int, list[QcResult]] = {batch_id: [] for batch_id in ids}
    for result in results:
        by_batch[result.batch_id].append(result)
    current = {batch_id: qc.current(rows) for batch_id, rows in by_batch.items()}
    queued = []
    critical: list[tuple[QcResult, SpecificationTest]] = []
    for context in contexts:
        batch_id = context.batch.id or 0
        spec_tests = tests[context.batch.specification_id or current_spec]
        in_force = current[batch_id]
        outcomes = [in_force[t.test].outcome for t in spec_tests if t.test in in_force]
        queued.append(
            QueuedBatch(
                batch=batches.summary(context),
                tests=len(spec_tests),
                passed=outcomes.count(Outcome.PASS.value),
                failed=outcomes.count(Outcome.FAIL.value),
            )
        )
        critical += [(in_force[t.test], t) for t in spec_tests if t.critical and t.test in in_force]
    reviewed = signatures.of_records(
        session, SignedRecord.QC_RESULT, [r.id or 0 for r, _ in critical]
    )
    numbers = {c.batch.id: c.batch.batch_number for c in contexts}
    open_deviations = deviations.find(session, unresolved_only=True)
    people = auth.people(
        session,
        ids=[r.entered_by for r, _ in critical],
        usernames=[d.opened_by for d in open_deviations],
    )
    reviews = [
        AwaitingReview(
            result_id=r.id or 0,
            batch_id=r.batch_id,
            batch_number=numbers[r.batch_id],
            test=t.name,
            value=r.value_text if r.value_text is not None else r.value_number or 0.0,
            unit=r.unit,
            limit=specifications.limit_text(t),
            outcome=r.outcome,
            entered_by=people.by_id[r.entered_by].username,
        )
        for r, t in critical
        if not reviewed[r.id or 0]
    ]
    return Queue(
        batches=queued,
        deviations=open_deviations,
        reviews=reviews,
        audit_reviews=audit_review.pending(session, settings),
        people=people,
    )
