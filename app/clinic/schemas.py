from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, SkipValidation, StringConstraints
from starlette.datastructures import URL

from app.signatures.schemas import Password
from app.types import MAX_ID, CodeInput, FiniteFloat, LongText, Timestamp

WristbandMrn = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Username = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class BedsideCheck(BaseModel):
    """The two patient identifiers (wristband MRN scanned, birth date asked) and the dose label."""

    model_config = ConfigDict(extra="forbid")

    wristband_mrn: WristbandMrn
    birth_date: date
    dose_code: CodeInput


class InfusionCreate(BedsideCheck):
    """The bedside check again, in the same transaction, and a second clinician who witnesses it
    by entering their own password."""

    administered_at: Timestamp
    # Needed when administered_at is older than the late-entry skew (AUD-6).
    late_reason: LongText | None = None
    witness_username: Username
    witness_password: Password
    volume_ml: Annotated[FiniteFloat, Field(gt=0, le=5000)] | None = None
    observations: LongText | None = None
    adverse_reactions: LongText | None = None


class BedsidePublic(BaseModel):
    ok: bool
    dose_code: str
    patient_id: int
    mrn: str
    coi: str
    batch_id: int
    batch_number: str
    expires_at: datetime
    release: str
    checks: list[str]


class InfusionPublic(BaseModel):
    id: int
    dose_code: str
    batch_id: int
    patient_id: int
    administered_at: datetime
    administered_by: str
    witness: str
    volume_ml: float | None
    observations: str | None
    adverse_reactions: str | None
    recorded_at: datetime
    batch_status: str
    late: bool = False
    late_reason: str | None = None


class PlanCreate(BaseModel):
    """Plan the batch's doses from the protocol template, starting on `first_infusion_at`."""

    model_config = ConfigDict(extra="forbid")

    first_infusion_at: Timestamp


class Reschedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    planned_at: Timestamp
    reason: LongText


class PlannedInfusionPublic(BaseModel):
    id: int
    batch_id: int
    dose_code: str
    sequence: int
    planned_at: datetime
    window_start: datetime
    window_end: datetime
    dose_expires_at: datetime | None
    infused: bool
    # `Told` sentences kept as they are, so a page shows their instants in local time.
    warnings: list[Annotated[str, SkipValidation]]


class DoseOnBoard(BaseModel):
    code: str
    status: str
    expires_at: datetime | None
    expired: bool
    location: str | None
    at_clinic: bool
    planned_at: datetime | None


class ReadinessRow(BaseModel):
    """One patient on the clinic's board (CLN-1); contract fields first."""

    patient_id: int
    mrn: str
    batch_id: int | None
    status: str | None
    ready: bool
    reason: str | None
    doses: list[DoseOnBoard]
    patient_name: str
    batch_number: str | None
    biopsy_collected_at: datetime | None
    qc_passed: int
    qc_total: int
    release: str | None
    alerts: list[str]
    planned_infusions: list[PlannedInfusionPublic]


# The board comes in pages (ADR 0013): `?limit=` rows (at most PAGE_MAX) from `?offset=`.
PAGE_SIZE = 50
PAGE_MAX = 200
PageLimit = Annotated[int, Query(ge=1, le=PAGE_MAX, description="Patients per page.")]
PageOffset = Annotated[int, Query(ge=0, le=MAX_ID, description="Patients to skip.")]


@dataclass(frozen=True)
class BoardPage:
    """One page of the board and where it sits among all the patients in treatment."""

    rows: list[ReadinessRow]
    total: int
    limit: int
    offset: int

    @property
    def next_offset(self) -> int | None:
        return self.offset + self.limit if self.offset + self.limit < self.total else None

    @property
    def previous_offset(self) -> int | None:
        return max(self.offset - self.limit, 0) if self.offset > 0 else None

    def headers(self, url: URL) -> dict[str, str]:
        """`X-Total-Count`, and a `Link` to the next and previous pages (RFC 8288)."""
        links = [
            f'<{url.include_query_params(limit=self.limit, offset=offset)}>; rel="{rel}"'
            for rel, offset in (("next", self.next_offset), ("prev", self.previous_offset))
            if offset is not None
        ]
        return {"X-Total-Count": str(self.total)} | ({"Link": ", ".join(links)} if links else {})
