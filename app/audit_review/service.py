"""Periodic review of the audit trail (EU GMP Annex 11 §9, AUD-8): QA reads one period of the
trail, filtered and exceptions first, page by page, and signs the period reviewed (SIG-1..3).

A period is `audit_review_period_days` long, counted from Monday 2024-01-01 00:00 UTC, so the
default of 7 is the ISO calendar week (ADR 0023). Every complete period since the first event
that nobody has signed reviewed is pending, and shows on the QA queue."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.audit.models import AuditEvent
from app.audit.schemas import AuditEventPublic
from app.audit_review.models import AuditReview
from app.audit_review.schemas import (
    AuditReviewCreate,
    AuditReviewPublic,
    EventPagePublic,
    PendingPublic,
    PeriodPublic,
    ReviewedEventPublic,
)
from app.auth import service as auth
from app.auth.models import User
from app.batches import service as batches
from app.clock import as_utc, utcnow
from app.config import Settings
from app.db import add_unique
from app.deviations.models import Deviation
from app.errors import AlreadyReviewed, InvalidRequest, NotFound, PeriodNotOver, Told
from app.patients.models import Patient
from app.qc.models import QcResult
from app.release.models import ReleaseDecision
from app.signatures import service as signatures
from app.signatures.schemas import Meaning, SignedRecord
from app.steps.models import Step
from app.vessels.models import Vessel

ANCHOR = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday: periods of 7 days are calendar weeks
MAX_SPAN = timedelta(days=366)  # the widest window one read of the trail may ask for
PENDING_SHOWN = 26


@dataclass(frozen=True)
class Rule:
    """An event is an exception of `category` when `column` matches the SQL LIKE `pattern`."""

    category: str
    column: str  # "action" or "new_values" (canonical JSON: sorted keys, no spaces)
    pattern: str

    def sql(self) -> ColumnElement[bool]:
        return col(getattr(AuditEvent, self.column)).like(self.pattern)

    def matches(self, event: AuditEvent) -> bool:
        value = getattr(event, self.column) or ""
        regex = "".join(
            ".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in self.pattern
        )
        return re.fullmatch(regex, value, flags=re.DOTALL) is not None


# What a reviewer reads first (AUD-8): one table, used by the query and by the label alike.
EXCEPTIONS = (
    Rule("failed sign-in", "action", "auth.login_failed"),
    Rule("failed sign-in", "action", "signature.failed"),
    Rule("failed sign-in", "action", "%.witness_failed"),
    Rule("lock", "action", "%locked"),
    Rule("mismatch", "action", "%mismatch%"),
    Rule("refusal", "action", "%refused%"),
    Rule("refusal", "action", "scan.invalid_code"),
    Rule("refusal", "action", "scan.unknown_code"),
    Rule("refusal", "action", "scan.voided_registration"),
    Rule("correction", "action", "%corrected%"),
    Rule("correction", "action", "%voided%"),
    Rule("late entry", "new_values", '%"late":true%'),
)
IS_EXCEPTION = or_(*(rule.sql() for rule in EXCEPTIONS))
EXCEPTION_FLAG = case((IS_EXCEPTION, 1), else_=0)
# Snapshots of written rows (AUD-7) are checked by verification, not read by a person.
REVIEWED = col(AuditEvent.entity_type) != EntityType.RECORD.value


def exception_of(event: AuditEvent) -> str | None:
    """The exception category of an event, or None for an ordinary one."""
    return next((rule.category for rule in EXCEPTIONS if rule.matches(event)), None)


def period_length(settings: Settings) -> timedelta:
    return timedelta(days=settings.audit_review_period_days)


def period_of(settings: Settings, moment: datetime) -> tuple[datetime, datetime]:
    """The review period holding `moment`: [start, end)."""
    length = period_length(settings)
    start = ANCHOR + ((as_utc(moment) - ANCHOR) // length) * length
    return start, start + length


def _in_window(start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    return [
        col(AuditEvent.occurred_at) >= start,
        col(AuditEvent.occurred_at) < end,
        REVIEWED,
    ]


@dataclass(frozen=True)
class Tally:
    events: int
    exceptions: int
    last_seq: int | None


def tally(session: Session, where: list[ColumnElement[bool]]) -> Tally:
    """How many events, how many exceptions, and the newest seq, matching `where` (one query)."""
    events, exceptions, last_seq = session.execute(
        select(func.count(), func.coalesce(func.sum(EXCEPTION_FLAG), 0), func.max(AuditEvent.seq))
        .select_from(AuditEvent)
        .where(*where)
    ).one()
    return Tally(events, int(exceptions), last_seq)


def pending(session: Session, settings: Settings, *, shown: int = PENDING_SHOWN) -> PendingPublic:
    """Every complete period since the first event that no review covers: how many, and the
    oldest `shown` with their events and exceptions (three queries)."""
    days = settings.audit_review_period_days
    first = session.execute(select(func.min(AuditEvent.occurred_at)).where(REVIEWED)).scalar()
    if first is None:
        return PendingPublic(period_days=days, pending=0, periods=[])
    length = period_length(settings)
    first_start, _ = period_of(settings, first)
    current_start, _ = period_of(settings, utcnow())
    reviewed = {
        as_utc(start)
        for start in session.execute(
            select(AuditReview.period_start).where(col(AuditReview.period_start) >= first_start)
        ).scalars()
    }
    complete = (first_start + i * length for i in range((current_start - first_start) // length))
    starts = [start for start in complete if start not in reviewed]
    window = starts[:shown]
    counts: dict[int, tuple[int, int]] = {}
    if window:
        bucket = case(
            *((col(AuditEvent.occurred_at) < start + length, i) for i, start in enumerate(window))
        )
        rows = session.execute(
            select(bucket, func.count(), func.sum(EXCEPTION_FLAG))
            .where(
                or_(*(and_(*_in_window(start, start + length)) for start in window)),
            )
            .group_by(bucket)
        )
        counts = {index: (n, int(e or 0)) for index, n, e in rows}
    return PendingPublic(
        period_days=days,
        pending=len(starts),
        periods=[
            PeriodPublic(
                period_start=start,
                period_end=start + length,
                events=counts.get(i, (0, 0))[0],
                exceptions=counts.get(i, (0, 0))[1],
            )
            for i, start in enumerate(window)
        ],
    )


@dataclass(frozen=True)
class EventFilters:
    patient: int | None = None
    batch: int | None = None
    action: str | None = None  # an action (`qc_result.corrected`) or its prefix (`qc_result`)
    user: str | None = None  # the actor's username
    exceptions_only: bool = False

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, False)}


def _filter_clauses(session: Session, filters: EventFilters) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if filters.patient is not None:
        patient = session.get(Patient, filters.patient)
        if patient is None:
            raise NotFound(f"No patient has id {filters.patient}.")
        clauses.append(col(AuditEvent.scope) == patient.coi)
    if filters.batch is not None:
        clauses += _batch_clauses(session, filters.batch)
    if filters.action is not None:
        clauses.append(
            or_(
                col(AuditEvent.action) == filters.action,
                col(AuditEvent.action).startswith(filters.action + ".", autoescape=True),
            )
        )
    if filters.user is not None:
        clauses.append(col(AuditEvent.actor) == filters.user)
    if filters.exceptions_only:
        clauses.append(IS_EXCEPTION)
    return clauses


def _batch_clauses(session: Session, batch_id: int) -> list[ColumnElement[bool]]:
    """The events of a batch: about it, its biopsy, vessels, steps, results, deviations and
    decisions, in its patient's chain (five queries for the ids)."""
    context = batches.get(session, batch_id)

    def ids(column: Any, owner: Any) -> list[int]:
        return list(session.execute(select(column).where(owner == batch_id)).scalars())

    entities = {
        EntityType.BATCH: [batch_id],
        EntityType.BIOPSY: [context.biopsy.id or 0],
        EntityType.VESSEL: ids(Vessel.id, Vessel.batch_id),
        EntityType.STEP: ids(Step.id, Step.batch_id),
        EntityType.QC_RESULT: ids(QcResult.id, QcResult.batch_id),
        EntityType.DEVIATION: ids(Deviation.id, Deviation.batch_id),
        EntityType.RELEASE: ids(ReleaseDecision.id, ReleaseDecision.batch_id),
    }
    return [
        col(AuditEvent.scope) == context.patient.coi,
        or_(
            *(
                and_(
                    col(AuditEvent.entity_type) == kind.value, col(AuditEvent.entity_id).in_(found)
                )
                for kind, found in entities.items()
                if found
            )
        ),
    ]


def events_page(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    filters: EventFilters,
    limit: int,
    offset: int,
) -> EventPagePublic:
    """One page of the trail between `start` and `end` matching `filters`: exceptions first,
    then in `seq` order, with how many events and exceptions match in all (AUD-8)."""
    if end <= start:
        raise InvalidRequest("The end of the window must be after its start.")
    if end - start > MAX_SPAN:
        raise InvalidRequest("A window of the trail spans at most 366 days; review it by period.")
    where = _in_window(start, end) + _filter_clauses(session, filters)
    counted = tally(session, where)
    rows = session.execute(
        select(AuditEvent)
        .where(*where)
        .order_by(EXCEPTION_FLAG.desc(), col(AuditEvent.seq))
        .limit(limit)
        .offset(offset)
    ).scalars()
    return EventPagePublic(
        period_start=start,
        period_end=end,
        filters=filters.public(),
        total=counted.events,
        exceptions=counted.exceptions,
        limit=limit,
        offset=offset,
        events=[
            ReviewedEventPublic(
                **AuditEventPublic.from_event(event).model_dump(), exception=exception_of(event)
            )
            for event in rows
        ],
    )


def content(review: AuditReview) -> dict[str, Any]:
    """The canonical content of a review: what its signature covers (SIG-3)."""
    return {
        "record": "audit_review",
        "id": review.id,
        "period_start": review.period_start,
        "period_end": review.period_end,
        "events": review.events,
        "exceptions": review.exceptions,
        "last_seq": review.last_seq,
        "comment": review.comment,
        "reviewed_by": review.reviewed_by,
        "reviewed_at": review.reviewed_at,
    }


def sign(
    session: Session, settings: Settings, *, actor: User, data: AuditReviewCreate
) -> AuditReview:
    """QA signs one whole, ended period of the trail reviewed (`reviewed`, SIG-1..3); a period
    with exceptions needs a comment saying what was found; each period is reviewed once."""
    signer = signatures.authenticate(
        session,
        settings,
        user=actor,
        password=data.password,
        meaning=Meaning.REVIEWED,
        comment=data.comment,
        record_type=SignedRecord.AUDIT_REVIEW,
        record_id=None,
    )
    start, end = period_of(settings, data.period_start)
    if (start, end) != (data.period_start, data.period_end):
        raise InvalidRequest(
            Told(
                f"A review covers one whole period of {settings.audit_review_period_days} "
                "day(s), from a period start; the one holding that start is {start} to {end}.",
                start=start,
                end=end,
            )
        )
    if end > utcnow():
        raise PeriodNotOver(Told("The period ending {end} has not ended yet.", end=end))
    taken = AlreadyReviewed(Told("The period starting {start} is reviewed already.", start=start))
    if session.execute(select(AuditReview.id).where(AuditReview.period_start == start)).first():
        raise taken
    counted = tally(session, _in_window(start, end))
    if counted.exceptions and data.comment is None:
        raise InvalidRequest(
            f"The period holds {counted.exceptions} exception(s); the review's comment says "
            "what was found and done about them."
        )
    review = AuditReview(
        period_start=start,
        period_end=end,
        events=counted.events,
        exceptions=counted.exceptions,
        last_seq=counted.last_seq,
        comment=data.comment,
        reviewed_by=actor.id or 0,
    )
    add_unique(session, review, taken)  # two reviewers at once: one review, the other 409
    session.flush()
    signatures.apply(
        session,
        signer,
        record_type=SignedRecord.AUDIT_REVIEW,
        record_id=review.id or 0,
        content=content(review),
        coi=None,
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.AUDIT_REVIEW_SIGNED,
        entity_type=EntityType.AUDIT_REVIEW,
        entity_id=review.id,
        coi=None,
        new={
            "period_start": start,
            "period_end": end,
            "events": counted.events,
            "exceptions": counted.exceptions,
            "last_seq": counted.last_seq,
        },
        reason=data.comment,
    )
    return review


def reviews(session: Session, *, limit: int = 100, offset: int = 0) -> list[AuditReviewPublic]:
    """Signed reviews, newest period first, each with its signature and whether it matches."""
    query = select(AuditReview).order_by(col(AuditReview.period_start).desc())
    return _public(session, list(session.execute(query.limit(limit).offset(offset)).scalars()))


def review_public(session: Session, review: AuditReview) -> AuditReviewPublic:
    (view,) = _public(session, [review])
    return view


def _public(session: Session, rows: list[AuditReview]) -> list[AuditReviewPublic]:
    signed = signatures.of_records(session, SignedRecord.AUDIT_REVIEW, [r.id or 0 for r in rows])
    people = auth.usernames(session, [r.reviewed_by for r in rows])
    return [
        AuditReviewPublic(
            id=r.id or 0,
            period_start=r.period_start,
            period_end=r.period_end,
            events=r.events,
            exceptions=r.exceptions,
            last_seq=r.last_seq,
            comment=r.comment,
            reviewed_by=people[r.reviewed_by],
            reviewed_at=r.reviewed_at,
            signature=signatures.public(signed[r.id or 0][0], content(r)),
        )
        for r in rows
    ]
