"""Culture clocks: passage number, days in culture and cumulative population doublings of a
batch, with configurable soft (warning) and hard (refusal) limits."""

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session, col

from app.batches.service import BatchContext
from app.errors import CultureLimit
from app.gmp_settings import service as gmp_settings
from app.gmp_settings.groups import CultureLimits
from app.steps.models import Step
from app.steps.rules import StepKind
from app.vessels.models import Vessel


@dataclass(frozen=True)
class CultureClock:
    limits: CultureLimits
    batch_number: str
    passage: int
    days_in_culture: float | None
    doublings: float  # of the passages whose figure is known
    # Passages without a figure (no cells seeded typed): unknown, never counted as zero.
    passages_without_doublings: int = 0

    def warnings(self) -> list[str]:
        """Soft limits passed: shown on the batch, not blocking."""
        s, found = self.limits, []
        if self.passage > s.passage_soft:
            found.append(f"passage {self.passage} is past the soft limit {s.passage_soft}")
        if self.days_in_culture is not None and self.days_in_culture > s.days_soft:
            found.append(
                f"{self.days_in_culture:.0f} days in culture is past the soft limit {s.days_soft}"
            )
        if self.doublings > s.doublings_soft:
            found.append(
                f"{self.doublings:.1f} population doublings is past the soft limit "
                f"{s.doublings_soft}"
            )
        return found

    def refuse_past_hard_limits(self, *, passage: int, extra_doublings: float) -> None:
        """Refuse a step that would take the culture past a hard limit."""
        s = self.limits
        if passage > s.passage_hard:
            raise CultureLimit(
                f"Batch {self.batch_number} would reach passage {passage}, past the hard limit "
                f"{s.passage_hard}."
            )
        if self.days_in_culture is not None and self.days_in_culture > s.days_hard:
            raise CultureLimit(
                f"Batch {self.batch_number} has been {self.days_in_culture:.0f} days in culture, "
                f"past the hard limit {s.days_hard}."
            )
        if self.doublings + extra_doublings > s.doublings_hard:
            raise CultureLimit(
                f"Batch {self.batch_number} would reach "
                f"{self.doublings + extra_doublings:.1f} population doublings, past the hard "
                f"limit {s.doublings_hard}."
            )

    def as_dict(self) -> dict[str, object]:
        return {
            "passage": self.passage,
            "days_in_culture": None
            if self.days_in_culture is None
            else round(self.days_in_culture, 1),
            "cumulative_population_doublings": round(self.doublings, 3),
            "passages_without_doublings": self.passages_without_doublings,
            "warnings": self.warnings(),
        }


def culture_clock(session: Session, context: BatchContext, *, now: datetime) -> CultureClock:
    """The batch's culture clocks against the culture limits in force (QC-3), in three queries
    however long its history."""
    batch_id = context.batch.id
    passage = session.execute(
        select(func.coalesce(func.max(Vessel.passage), 0)).where(Vessel.batch_id == batch_id)
    ).scalar_one()
    culture_steps = session.execute(
        select(Step.kind, Step.performed_at, Step.measurements)
        .where(
            Step.batch_id == batch_id,
            col(Step.kind).in_([StepKind.ISOLATION, StepKind.PASSAGE, StepKind.HARVEST]),
        )
        .order_by(col(Step.performed_at))
    ).all()
    started = next((at for kind, at, _ in culture_steps if kind == StepKind.ISOLATION), None)
    ended = next((at for kind, at, _ in culture_steps if kind == StepKind.HARVEST), None)
    days = None if started is None else ((ended or now) - started).total_seconds() / 86400
    figures = [
        json.loads(measurements).get("population_doublings")
        for kind, _, measurements in culture_steps
        if kind == StepKind.PASSAGE
    ]  # only the server writes this figure (steps.schemas.SERVER_COMPUTED)
    doublings = sum(figure for figure in figures if figure is not None)
    return CultureClock(
        limits=gmp_settings.culture_limits(session),
        batch_number=context.batch.batch_number,
        passage=passage,
        days_in_culture=days,
        doublings=doublings,
        passages_without_doublings=sum(figure is None for figure in figures),
    )
