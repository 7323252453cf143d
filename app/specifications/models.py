from datetime import datetime

from sqlalchemy import Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime

# At most one version of a product is in force: the database decides between two approvals
# made at the same moment (QC-3, ADR 0022).
ONE_APPROVED = "status = 'approved'"


class Specification(SQLModel, table=True):
    """One version of the QC specification of a product (QC-1). Versions are never edited: QA
    drafts a new one, e-signed by its author, and another QA user approves it (QC-3): `draft` →
    `approved` → `superseded`. Version 1 ships with the product as a draft (created_by empty)."""

    __tablename__ = "specification"
    __table_args__ = (
        UniqueConstraint("product", "version"),
        Index(
            "uq_specification_one_approved",
            "product",
            unique=True,
            sqlite_where=text(ONE_APPROVED),
            postgresql_where=text(ONE_APPROVED),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    product: str = Field(max_length=64)
    version: int
    status: str = Field(default="draft", max_length=16)
    note: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: int | None = Field(default=None, foreign_key="app_user.id")


class SpecificationTest(SQLModel, table=True):
    """One test of a specification: a numeric limit (minimum/maximum, in `unit`) or an expected
    qualitative answer with the answers the lab may enter (`answers`: canonical JSON object of
    answer -> passes)."""

    __tablename__ = "specification_test"
    __table_args__ = (UniqueConstraint("specification_id", "test"),)

    id: int | None = Field(default=None, primary_key=True)
    specification_id: int = Field(foreign_key="specification.id", index=True)
    position: int
    test: str = Field(max_length=40)
    name: str = Field(max_length=200)
    method: str = Field(max_length=200)
    unit: str | None = Field(default=None, max_length=32)
    minimum: float | None = None
    maximum: float | None = None
    minimum_inclusive: bool = True
    maximum_inclusive: bool = True
    expected: str | None = Field(default=None, max_length=64)
    answers: str | None = Field(default=None, sa_type=Text)
    critical: bool = False
