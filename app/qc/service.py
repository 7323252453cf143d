"""QC results (QC-2): evaluated on entry against the batch's pinned specification, never
overwritten, an out-of-specification result opens a deviation (and, on a batch already
released, raises an alert: REL-2); critical results take a second person's e-signed review."""

import json
from collections.abc import Sequence
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth import service as auth
from app.auth.models import User
from app.batches import service as batches
from app.batches.models import Batch
from app.batches.service import BatchContext
from app.batches.states import FINAL, BatchStatus
from app.clock import utcnow
from app.config import Settings
from app.db import add_unique
from app.deviations import service as deviations
from app.deviations.models import Deviation
from app.deviations.states import DeviationKind
from app.errors import (
    Conflict,
    Forbidden,
    IdentityMismatch,
    InvalidRequest,
    InvalidState,
    NotFound,
    ResultExists,
    UnknownTest,
)
from app.identity.codes import parse_vessel_code
from app.notifications import service as notifications
from app.qc.evaluation import Evaluated, Outcome, evaluate, value_text
from app.qc.models import QcResult
from app.qc.schemas import QcPublic, QcResultCreate, QcResultPublic, QcTestPublic
from app.qualifications import service as qualifications
from app.qualifications.schemas import Duty
from app.signatures import service as signatures
from app.signatures.schemas import Meaning, SignatureInput, SignedRecord
from app.specifications import service as specifications
from app.specifications.models import Specification, SpecificationTest
from app.vessels.models import Vessel
from app.vessels.repository import identity_by_code

# A failing result on a batch in these states is a late failure: the clinic must hear of it.
RELEASED_STATES = frozenset(
    {BatchStatus.RELEASED, BatchStatus.CONDITIONALLY_RELEASED, BatchStatus.ISSUED}
)


def specification_of(
    session: Session, settings: Settings, batch: Batch
) -> tuple[Specification, list[SpecificationTest]]:
    """The version the batch is tested against (read only: a legacy batch with none pinned is
    shown against the version in force; entering a result pins it)."""
    spec = (
        specifications.get(session, batch.specification_id)
        if batch.specification_id is not None
        else specifications.in_force(session)
    )
    return spec, specifications.tests_of(session, [spec.id or 0])[spec.id or 0]


def history(session: Session, batch_id: int) -> list[QcResult]:
    """Every result of the batch, corrections included, oldest first."""
    return list(
        session.execute(
            select(QcResult).where(QcResult.batch_id == batch_id).order_by(col(QcResult.id))
        ).scalars()
    )


def current(results: Sequence[QcResult]) -> dict[str, QcResult]:
    """The result in force per test: the one no correction superseded."""
    superseded = {r.supersedes_id for r in results if r.supersedes_id is not None}
    return {r.test: r for r in results if r.id not in superseded}


def _test(tests: list[SpecificationTest], spec: Specification, name: str) -> SpecificationTest:
    for test in tests:
        if test.test == name.strip().lower():
            return test
    known = ", ".join(t.test for t in tests)
    raise UnknownTest(
        f"{name!r} is not a test of specification version {spec.version}; its tests are {known}."
    )


def _sample(
    session: Session, actor: User, context: BatchContext, code: str | None
) -> Vessel | None:
    """The sample the result was measured on, which must be a vessel of this batch (COI-3)."""
    if code is None:
        return None
    parsed = parse_vessel_code(code).value
    found = identity_by_code(session, parsed)
    if found is None:
        raise NotFound(f"No vessel has code {parsed}.")
    if found.vessel.batch_id != context.batch.id:
        raise IdentityMismatch(
            f"Refused: sample {parsed} does not belong to batch {context.batch.batch_number}. "
            "A result is recorded only against a sample of its own batch.",
            aftermath=partial(
                audit.record,
                actor=actor,
                action=AuditAction.QC_SAMPLE_MISMATCH,
                entity_type=EntityType.BATCH,
                entity_id=context.batch.id,
                coi=context.patient.coi,
                new={"sample_code": parsed},
            ),
        )
    return found.vessel


def _replaced(
    results: list[QcResult], test: SpecificationTest, data: QcResultCreate
) -> QcResult | None:
    """The result a correction replaces; a second result without a correction is refused."""
    in_force = current(results).get(test.test)
    if data.corrects is None:
        if in_force is not None:
            raise ResultExists(
                f"{test.test} already has a result (id {in_force.id}). A result is never "
                "overwritten: send a correction naming it in `corrects`, with a `reason`."
            )
        return None
    if in_force is None or in_force.id != data.corrects:
        raise Conflict(
            f"Result {data.corrects} is not the current {test.test} result of this batch"
            + (f" (that is result {in_force.id})." if in_force is not None else ".")
        )
    if not data.reason:
        raise InvalidRequest("A correction needs a reason.")
    return in_force


def content(result: QcResult) -> dict[str, Any]:
    """The canonical content of a result: what its review signature covers (SIG-3)."""
    return {
        "record": "qc_result",
        "id": result.id,
        "batch_id": result.batch_id,
        "test": result.test,
        "value_number": result.value_number,
        "value_text": result.value_text,
        "unit": result.unit,
        "outcome": result.outcome,
        "entered_as": result.entered_as,
        "sample_vessel_id": result.sample_vessel_id,
        "supersedes_id": result.supersedes_id,
        "reason": result.reason,
        "entered_by": result.entered_by,
        "entered_at": result.entered_at,
    }


def enter(
    session: Session, settings: Settings, *, actor: User, batch_id: int, data: QcResultCreate
) -> QcResult:
    """Record one result (or a correction) on batch `batch_id`, evaluated against its spec."""
    context = batches.get(session, batch_id, lock=True)
    status = BatchStatus(context.batch.status)
    if status in FINAL:
        raise InvalidState(
            f"Batch {context.batch.batch_number} is {status}; it takes no more QC results."
        )
    spec = specifications.pinned(session, context.batch, actor=actor, coi=context.patient.coi)
    test = _test(specifications.tests_of(session, [spec.id or 0])[spec.id or 0], spec, data.test)
    evaluated = evaluate(test, data.value, data.unit)
    sample = _sample(session, actor, context, data.sample_code)
    replaced = _replaced(history(session, batch_id), test, data)
    result = _insert(session, actor, context, test, evaluated, sample, replaced, data)
    if evaluated.outcome is Outcome.FAIL:
        _out_of_specification(session, settings, actor, context, status, test, result)
    return result


def _insert(
    session: Session,
    actor: User,
    context: BatchContext,
    test: SpecificationTest,
    evaluated: Evaluated,
    sample: Vessel | None,
    replaced: QcResult | None,
    data: QcResultCreate,
) -> QcResult:
    assert actor.id is not None and context.batch.id is not None and test.id is not None
    result = QcResult(
        batch_id=context.batch.id,
        specification_test_id=test.id,
        test=test.test,
        value_number=evaluated.number,
        value_text=evaluated.text,
        unit=evaluated.unit,
        entered_as=None if evaluated.entered_as is None else json.dumps(evaluated.entered_as),
        outcome=evaluated.outcome.value,
        sample_vessel_id=sample.id if sample is not None else None,
        supersedes_id=replaced.id if replaced is not None else None,
        reason=data.reason,
        note=data.note,
        entered_by=actor.id,
    )
    add_unique(
        session,
        result,
        Conflict(f"The {test.test} result was corrected by someone else just now; reload."),
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.QC_RESULT_CORRECTED if replaced else AuditAction.QC_RESULT_ENTERED,
        entity_type=EntityType.QC_RESULT,
        entity_id=result.id,
        coi=context.patient.coi,
        old=None if replaced is None else {"result_id": replaced.id, **_shown(replaced)},
        new={"batch_id": context.batch.id, "test": test.test, **_shown(result)},
        reason=data.reason if replaced else None,
    )
    return result


def _shown(result: QcResult) -> dict[str, Any]:
    return {
        "value": value_text(result.value_number, result.value_text, result.unit),
        "outcome": result.outcome,
    }


def _out_of_specification(
    session: Session,
    settings: Settings,
    actor: User,
    context: BatchContext,
    status: BatchStatus,
    test: SpecificationTest,
    result: QcResult,
) -> None:
    """An OOS result opens a deviation (holding the batch); on a released batch it also raises
    an alert for the clinic (REL-2)."""
    shown = value_text(result.value_number, result.value_text, result.unit)
    finding = f"{test.name}: {shown}, limit {specifications.limit_text(test)}"
    if status in RELEASED_STATES:
        batches.raise_alert(
            session,
            actor=actor,
            context=context,
            kind="late_failure",
            message=(
                f"Result after release failed: {finding}. The batch is on hold: no dispatch or "
                "infusion until QA decides."
            ),
            qc_result_id=result.id,
        )
        notifications.enqueue(
            session,
            settings,
            event="batch.late_failure",
            payload={
                "batch_id": context.batch.id,
                "batch_number": context.batch.batch_number,
                "din": context.biopsy.din,
                "coi": context.patient.coi,
                "status": "on_hold",
                "test": test.test,
                "result": shown,
                "limit": specifications.limit_text(test),
            },
            coi=context.patient.coi,
            batch_id=context.batch.id,
        )
    deviations.open_deviation(
        session,
        actor=actor,
        context=context,
        kind=DeviationKind.OUT_OF_SPECIFICATION,
        description=f"Out of specification: {finding}.",
        qc_result_id=result.id,
    )


def review(
    session: Session, settings: Settings, *, actor: User, result_id: int, data: SignatureInput
) -> QcResult:
    """A second person's e-signed review of a result (Annex 11 §6): never its author."""
    found = session.get(QcResult, result_id)
    if found is None:
        raise NotFound(f"No QC result has id {result_id}.")
    context = batches.get(session, found.batch_id, lock=True)
    signer = signatures.authenticate(
        session,
        settings,
        user=actor,
        password=data.password,
        meaning=Meaning.REVIEWED,
        comment=data.comment,
        record_type=SignedRecord.QC_RESULT,
        record_id=result_id,
    )
    if found.entered_by == actor.id:
        raise Forbidden(
            "You entered this result; a second person must review it (four-eyes, SIG-4)."
        )
    qualifications.require(
        session, actor, Duty.QC_REVIEW, at=utcnow(), context={"qc_result_id": result_id}
    )
    results = history(session, found.batch_id)
    if current(results).get(found.test) is not found:
        raise InvalidState(f"Result {result_id} was corrected; review the current result.")
    if signatures.of_records(session, SignedRecord.QC_RESULT, [result_id])[result_id]:
        raise Conflict(f"Result {result_id} is already reviewed.")
    signatures.apply(
        session,
        signer,
        record_type=SignedRecord.QC_RESULT,
        record_id=result_id,
        content=content(found),
        coi=context.patient.coi,
    )
    return found


def results_public(
    session: Session, results: list[QcResult], tests: list[SpecificationTest]
) -> list[QcResultPublic]:
    """Results with who entered them, their reviews and the deviation each opened (a fixed
    number of queries however many results)."""
    ids = [r.id or 0 for r in results]
    people = auth.usernames(session, [r.entered_by for r in results])
    sample_ids = [r.sample_vessel_id for r in results if r.sample_vessel_id is not None]
    codes = dict(
        session.execute(select(Vessel.id, Vessel.code).where(col(Vessel.id).in_(sample_ids))).all()
        if sample_ids
        else []
    )
    opened = dict(
        session.execute(
            select(Deviation.qc_result_id, Deviation.id).where(col(Deviation.qc_result_id).in_(ids))
        ).all()
        if ids
        else []
    )
    reviews = signatures.of_records(session, SignedRecord.QC_RESULT, ids)
    superseded_by = {r.supersedes_id: r.id for r in results if r.supersedes_id is not None}
    critical = {t.test: t.critical for t in tests}
    return [
        QcResultPublic(
            id=r.id or 0,
            batch_id=r.batch_id,
            test=r.test,
            value=r.value_text if r.value_text is not None else r.value_number or 0.0,
            unit=r.unit,
            outcome=Outcome(r.outcome),
            entered_as=json.loads(r.entered_as) if r.entered_as else None,
            sample_code=codes.get(r.sample_vessel_id) if r.sample_vessel_id else None,
            supersedes_id=r.supersedes_id,
            superseded_by_id=superseded_by.get(r.id),
            reason=r.reason,
            note=r.note,
            entered_by=people[r.entered_by],
            entered_at=r.entered_at,
            critical=critical.get(r.test, False),
            reviews=[signatures.public(s, content(r)) for s in reviews[r.id or 0]],
            deviation_id=opened.get(r.id),
        )
        for r in results
    ]


def qc_public(session: Session, settings: Settings, batch_id: int) -> QcPublic:
    """The batch's QC: every test of its specification with its current result (contract
    GET /batches/{id}/qc), and the full history."""
    context = batches.get(session, batch_id)
    spec, tests = specification_of(session, settings, context.batch)
    results = history(session, batch_id)
    shown = results_public(session, results, tests)
    by_id = {r.id: r for r in shown}
    in_force = current(results)
    rows = []
    for test in tests:
        result = in_force.get(test.test)
        view = by_id[result.id] if result is not None else None
        rows.append(
            QcTestPublic(
                test=test.test,
                unit=test.unit,
                min=test.minimum,
                max=test.maximum,
                expected=test.expected,
                value=view.value if view else None,
                outcome=view.outcome if view else Outcome.PENDING,
                answers=specifications.answers_of(test),
                name=test.name,
                method=test.method,
                limit=specifications.limit_text(test),
                min_inclusive=test.minimum_inclusive,
                max_inclusive=test.maximum_inclusive,
                critical=test.critical,
                result_id=view.id if view else None,
                entered_by=view.entered_by if view else None,
                entered_at=view.entered_at if view else None,
                reviewed=bool(view and view.reviews),
                corrections=_corrections(in_force.get(test.test), results),
            )
        )
    count = {o: sum(1 for row in rows if row.outcome is o) for o in Outcome}
    return QcPublic(
        batch_id=batch_id,
        specification_id=spec.id or 0,
        specification_version=spec.version,
        tests=rows,
        passed=count[Outcome.PASS],
        failed=count[Outcome.FAIL],
        pending=count[Outcome.PENDING],
        complete=count[Outcome.PASS] == len(rows),
        history=shown,
    )


def _corrections(result: QcResult | None, results: list[QcResult]) -> int:
    by_id = {r.id: r for r in results}
    steps = 0
    while result is not None and result.supersedes_id is not None:
        steps += 1
        result = by_id.get(result.supersedes_id)
    return steps


def result_public(session: Session, settings: Settings, result: QcResult) -> QcResultPublic:
    context = batches.get(session, result.batch_id)
    _, tests = specification_of(session, settings, context.batch)
    (view,) = results_public(session, [result], tests)
    return view
