"""Chronology (AUD-6, ADR 0015): a dated record is never earlier than what it follows, a time
in the future beyond the devices' clock drift (`clock.CLOCK_SKEW`) is refused, and one older than
the late-entry skew is a late entry that needs a reason (EU GMP Annex 11 §9) and is shown as late
wherever the record is.

`check` is the rule; the other functions read the times records follow. Callers read those
times after taking their locks (ADR 0011), so no concurrent writer can slip an earlier or later
record in between the read and the insert."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session, col

from app.biopsies.models import Biopsy
from app.clock import CLOCK_SKEW
from app.errors import InvalidRequest, LateEntryReasonRequired, OutOfOrder
from app.release.models import ReleaseDecision
from app.release.schemas import Decision
from app.steps.models import Step
from app.vessels.models import Vessel

# (what the record follows, when that happened); a precedent with no time yet is skipped.
Precedent = tuple[str, datetime | None]


@dataclass(frozen=True)
class Dated:
    """The time a record states, the server's time of recording, and why it was entered late
    (None: entered in time)."""

    occurred_at: datetime
    recorded_at: datetime
    late_reason: str | None

    @property
    def late(self) -> bool:
        return self.late_reason is not None


def when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def check(
    what: str,
    occurred_at: datetime | None,
    *,
    not_before: Iterable[Precedent],
    now: datetime,
    skew: timedelta,
    late_reason: str | None,
) -> Dated:
    """The time of a new record (`now` when the client gave none), or a refusal: beyond the
    clock drift in the future (422 `invalid_request`), earlier than a precedent (409
    `out_of_order`, naming the latest one it precedes and both times), older than `skew`
    without a reason (422 `late_entry_reason_required`). A reason given for a record entered
    in time is not kept: `late` means the record was entered late."""
    stated = occurred_at or now
    if stated > now + CLOCK_SKEW:
        raise InvalidRequest(
            f"The {what} is dated {when(stated)}, in the future (server time {when(now)})."
        )
    preceded = [(label, at) for label, at in not_before if at is not None and stated < at]
    if preceded:
        label, at = max(preceded, key=lambda p: p[1])
        raise OutOfOrder(
            f"The {what} is dated {when(stated)}, earlier than {label} ({when(at)}); a record "
            "cannot precede what it follows. Check the time entered."
        )
    late = stated < now - skew
    if late and not late_reason:
        raise LateEntryReasonRequired(
            f"The {what} is dated {when(stated)}, more than {skew.total_seconds():g} s before "
            f"it is recorded ({when(now)}): a late entry needs a late_reason."
        )
    return Dated(occurred_at=stated, recorded_at=now, late_reason=late_reason if late else None)


def vessel_origins(session: Session, vessels: Iterable[Vessel]) -> dict[int, Precedent]:
    """When each vessel came to be, by vessel id: the step that made it (as performed) or, for
    a biopsy tube, the biopsy's collection (one query each)."""
    vessels = list(vessels)
    step_ids = {v.produced_by_step_id for v in vessels if v.produced_by_step_id is not None}
    steps = (
        dict(
            session.execute(
                select(Step.id, Step.performed_at).where(col(Step.id).in_(step_ids))
            ).all()
        )
        if step_ids
        else {}
    )
    tubes = {v.biopsy_id for v in vessels if v.produced_by_step_id is None}
    collected = (
        dict(
            session.execute(
                select(Biopsy.id, Biopsy.collected_at).where(col(Biopsy.id).in_(tubes))
            ).all()
        )
        if tubes
        else {}
    )
    origins: dict[int, Precedent] = {}
    for v in vessels:
        if v.produced_by_step_id is not None:
            origins[v.id or 0] = (f"the step that made {v.code}", steps[v.produced_by_step_id])
        else:
            origins[v.id or 0] = (f"the collection of {v.code}", collected.get(v.biopsy_id))
    return origins


def released_at(session: Session, batch_id: int) -> datetime | None:
    """When QA first released the batch (fully or conditionally); None if it never was."""
    return session.execute(
        select(func.min(ReleaseDecision.decided_at)).where(
            ReleaseDecision.batch_id == batch_id, ReleaseDecision.decision != Decision.REJECT.value
        )
    ).scalar_one_or_none()
