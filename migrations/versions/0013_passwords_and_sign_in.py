"""passwords and sign-in: forced change, ageing, history, temporary locks, per-source failures

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-02 13:40:00.000000

SEC-3, SEC-4 (ADR 0021). Existing accounts keep their passwords without a forced change; their
password age counts from their creation. A lock already in place stays until an admin lifts it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from app.db import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locked_until", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column(
                "password_change_required", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.add_column(sa.Column("password_changed_at", UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE app_user SET password_changed_at = created_at")
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.alter_column("password_change_required", server_default=None)
        batch_op.alter_column("password_changed_at", existing_type=UTCDateTime(timezone=True), nullable=False)
    op.create_table(
        "password_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("replaced_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_password_history_user_id_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_history")),
    )
    op.create_index(
        op.f("ix_password_history_user_id"), "password_history", ["user_id"], unique=False
    )
    op.create_table(
        "sign_in_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_failure")),
    )
    op.create_index(op.f("ix_sign_in_failure_at"), "sign_in_failure", ["at"], unique=False)
    op.create_index("ix_sign_in_failure_source_at", "sign_in_failure", ["source", "at"])


def downgrade() -> None:
    op.drop_index("ix_sign_in_failure_source_at", table_name="sign_in_failure")
    op.drop_index(op.f("ix_sign_in_failure_at"), table_name="sign_in_failure")
    op.drop_table("sign_in_failure")
    op.drop_index(op.f("ix_password_history_user_id"), table_name="password_history")
    op.drop_table("password_history")
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.drop_column("password_changed_at")
        batch_op.drop_column("password_change_required")
        batch_op.drop_column("locked_until")
