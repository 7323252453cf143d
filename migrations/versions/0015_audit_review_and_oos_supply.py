"""audit review and oos supply: periodic audit-trail reviews, the OOS supply record

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 13:26:37.589101

AUD-8 (ADR 0023): `audit_review`, one e-signed review per period of the trail, and an index on
`audit_event.occurred_at` so a period is read by an index range. REL-7: `oos_justification` (the
treating physician's justification of an immediate significant hazard) and `oos_notification`
(sponsor and authority told: who, when, reference). The three tables are append-only, by the
same triggers as migration 0011's tables.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db


revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("audit_review", "oos_justification", "oos_notification")


def _append_only_helpers():
    """Migration 0011's trigger helpers, loaded from its file (a module name cannot start
    with a digit), so that every append-only table is made so by the same code."""
    path = Path(__file__).with_name("0011_records_and_heads.py")
    spec = importlib.util.spec_from_file_location("homeward_migration_0011", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._make_append_only, module._drop_append_only


def upgrade() -> None:
    op.create_table(
        "audit_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period_start", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("period_end", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("exceptions", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("reviewed_by", sa.Integer(), nullable=False),
        sa.Column("reviewed_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["reviewed_by"], ["app_user.id"], name=op.f("fk_audit_review_reviewed_by_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_review")),
        sa.UniqueConstraint("period_start", name=op.f("uq_audit_review_period_start")),
    )
    op.create_table(
        "oos_justification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("physician_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("hazard", sa.Text(), nullable=False),
        sa.Column("justified_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("out_of_specification_tests", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.Integer(), nullable=False),
        sa.Column("recorded_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batch.id"], name=op.f("fk_oos_justification_batch_id_batch")
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by"], ["app_user.id"], name=op.f("fk_oos_justification_recorded_by_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oos_justification")),
    )
    with op.batch_alter_table("oos_justification", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oos_justification_batch_id"), ["batch_id"], unique=False
        )

    op.create_table(
        "oos_notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("party", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("notified_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("out_of_specification_tests", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.Integer(), nullable=False),
        sa.Column("recorded_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batch.id"], name=op.f("fk_oos_notification_batch_id_batch")
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by"], ["app_user.id"], name=op.f("fk_oos_notification_recorded_by_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oos_notification")),
    )
    with op.batch_alter_table("oos_notification", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oos_notification_batch_id"), ["batch_id"], unique=False
        )

    # Not in batch mode: audit_event must never be copied (its triggers, its chain).
    op.create_index("ix_audit_event_occurred_at", "audit_event", ["occurred_at"], unique=False)
    make_append_only, _ = _append_only_helpers()
    for table in APPEND_ONLY:
        make_append_only(table)


def downgrade() -> None:
    _, drop_append_only = _append_only_helpers()
    for table in APPEND_ONLY:
        drop_append_only(table)
    op.drop_index("ix_audit_event_occurred_at", table_name="audit_event")

    with op.batch_alter_table("oos_notification", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oos_notification_batch_id"))

    op.drop_table("oos_notification")
    with op.batch_alter_table("oos_justification", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oos_justification_batch_id"))

    op.drop_table("oos_justification")
    op.drop_table("audit_review")
