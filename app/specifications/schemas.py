from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from app.approval import VersionStatus
from app.signatures.schemas import Password, SignaturePublic
from app.types import FiniteFloat, LongText, Name

TestCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Answer = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=64)
]
Unit = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]


class SpecificationTestIn(BaseModel):
    """One test of a specification: numeric (unit and at least one limit) or qualitative
    (`expected`, and optionally the closed list of `answers` with whether each passes)."""

    model_config = ConfigDict(extra="forbid")

    test: TestCode
    name: Name
    method: Name
    unit: Unit | None = None
    min: FiniteFloat | None = None
    max: FiniteFloat | None = None
    min_inclusive: bool = True
    max_inclusive: bool = True
    expected: Answer | None = None
    answers: Annotated[dict[Answer, bool], Field(max_length=20)] | None = None
    critical: bool = False

    @model_validator(mode="after")
    def _numeric_or_qualitative(self) -> "SpecificationTestIn":
        numeric = self.min is not None or self.max is not None
        if numeric and self.expected is not None:
            raise ValueError(f"{self.test}: a test has limits or an expected answer, not both")
        if not numeric and self.expected is None:
            raise ValueError(f"{self.test}: give min and/or max, or an expected answer")
        if numeric and self.unit is None:
            raise ValueError(f"{self.test}: a numeric test needs its unit")
        if numeric and self.answers is not None:
            raise ValueError(f"{self.test}: answers belong to qualitative tests")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"{self.test}: min is above max")
        if (
            self.expected is not None
            and self.answers is not None
            and self.answers.get(self.expected) is not True
        ):
            raise ValueError(f"{self.test}: the expected answer must be a passing answer")
        return self


class SpecificationCreate(BaseModel):
    """A new specification version: a draft e-signed by the QA user who writes it (QC-1, SIG-1),
    in force once another QA user approves it (QC-3)."""

    model_config = ConfigDict(extra="forbid")

    tests: Annotated[list[SpecificationTestIn], Field(min_length=1, max_length=60)]
    note: LongText | None = None
    password: Password
    comment: LongText | None = None

    @model_validator(mode="after")
    def _each_test_once(self) -> "SpecificationCreate":
        codes = [t.test for t in self.tests]
        if len(set(codes)) != len(codes):
            raise ValueError("a test is listed twice")
        return self


class SpecificationTestPublic(BaseModel):
    test: str
    name: str
    method: str
    unit: str | None
    min: float | None
    max: float | None
    min_inclusive: bool
    max_inclusive: bool
    expected: str | None
    answers: dict[str, bool] | None
    critical: bool
    limit: str  # the acceptance criterion as a person reads it


class SpecificationPublic(BaseModel):
    id: int
    product: str
    version: int
    note: str | None
    created_at: datetime
    created_by: str
    status: VersionStatus  # draft → approved (in force) → superseded (QC-3)
    in_force: bool
    tests: list[SpecificationTestPublic]
    signatures: list[SignaturePublic]
