"""qualifications: people per duty, lots' QC release status, equipment due dates (SEC-5)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 13:27:46.031346

ADR 0024. The transition for records already in the database: lots already received were
accepted under the site's procedure before Homeward knew a QC status, and steps already used
them, so they become `released` (new lots start in `quarantine`); equipment gets no due date,
so it is refused until QA records its calibration and qualification; people get no
qualification: QA grants them (audited) before they can perform, review or witness.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "qualification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("duty", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("valid_from", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("granted_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("granted_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column(
            "revoke_reason", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_qualification_user_id_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qualification")),
    )
    with op.batch_alter_table("qualification", schema=None) as batch_op:
        batch_op.create_index("ix_qualification_user_duty", ["user_id", "duty"], unique=False)

    with op.batch_alter_table("equipment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("calibration_due_at", app.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("qualification_due_at", app.db.UTCDateTime(timezone=True), nullable=True)
        )

    # Lots already received count as released (ADR 0024); the default only fills them.
    with op.batch_alter_table("material_lot", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "status",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="released",
            )
        )
    with op.batch_alter_table("material_lot", schema=None) as batch_op:
        batch_op.alter_column("status", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("material_lot", schema=None) as batch_op:
        batch_op.drop_column("status")

    with op.batch_alter_table("equipment", schema=None) as batch_op:
        batch_op.drop_column("qualification_due_at")
        batch_op.drop_column("calibration_due_at")

    with op.batch_alter_table("qualification", schema=None) as batch_op:
        batch_op.drop_index("ix_qualification_user_duty")

    op.drop_table("qualification")
