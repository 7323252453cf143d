from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from app.qc.evaluation import Outcome
from app.signatures.schemas import SignaturePublic
from app.types import CodeInput, FiniteFloat, Id, LongText, ShortText

# Strict: a JSON true/false is not the number 1/0 (numeric strings still come as text and are
# parsed against the test in app.qc.evaluation).
ResultValue = Annotated[FiniteFloat, Field(ge=-1e15, le=1e15, strict=True)] | ShortText
UnitText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]


def _blank_is_none(value: object) -> object:
    """A blank unit (as forms and generic clients send for qualitative tests) is no unit."""
    return None if isinstance(value, str) and not value.strip() else value


class QcResultCreate(BaseModel):
    """One result. A test that already has a result takes a correction: `corrects` names the
    result it replaces and `reason` says why; the replaced value stays visible."""

    model_config = ConfigDict(extra="forbid")

    test: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
    value: ResultValue
    unit: Annotated[UnitText | None, BeforeValidator(_blank_is_none)] = None
    sample_code: CodeInput | None = None
    corrects: Id | None = None
    reason: LongText | None = None
    note: LongText | None = None


class QcResultPublic(BaseModel):
    id: int
    batch_id: int
    test: str
    value: float | str
    unit: str | None
    outcome: Outcome
    entered_as: dict[str, object] | None
    sample_code: str | None
    supersedes_id: int | None
    superseded_by_id: int | None
    reason: str | None
    note: str | None
    entered_by: str
    entered_at: datetime
    critical: bool
    reviews: list[SignaturePublic]
    deviation_id: int | None = None  # the deviation this result opened, if it failed


class QcTestPublic(BaseModel):
    """One test of the batch's specification with its current result (contract fields first)."""

    test: str
    unit: str | None
    min: float | None
    max: float | None
    expected: str | None
    value: float | str | None
    outcome: Outcome
    answers: dict[str, bool] | None  # the answers a qualitative test takes, and which pass
    name: str
    method: str
    limit: str
    min_inclusive: bool
    max_inclusive: bool
    critical: bool
    result_id: int | None
    entered_by: str | None
    entered_at: datetime | None
    reviewed: bool
    corrections: int  # how many earlier values this result replaced


class QcPublic(BaseModel):
    batch_id: int
    specification_id: int
    specification_version: int
    tests: list[QcTestPublic]
    passed: int
    failed: int
    pending: int
    complete: bool  # every test has a passing result
    history: list[QcResultPublic]  # every result entered, corrections included, oldest first
