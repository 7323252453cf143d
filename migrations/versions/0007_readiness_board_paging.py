"""readiness board paging: when a batch's status last moved, indexes for the in-treatment cohort

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("batch", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status_changed_at", app.db.UTCDateTime(timezone=True), nullable=True)
        )
    # An existing batch's last move is its last audited status change, or its registration.
    op.execute(
        "UPDATE batch SET status_changed_at = COALESCE("
        "(SELECT max(e.occurred_at) FROM audit_event e WHERE e.entity_type = 'batch' "
        "AND e.entity_id = batch.id AND e.action = 'batch.status_changed'), created_at)"
    )
    with op.batch_alter_table("batch", schema=None) as batch_op:
        batch_op.alter_column(
            "status_changed_at", existing_type=app.db.UTCDateTime(timezone=True), nullable=False
        )
        batch_op.create_index(batch_op.f("ix_batch_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_batch_status_changed_at"), ["status_changed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("batch", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batch_status_changed_at"))
        batch_op.drop_index(batch_op.f("ix_batch_status"))
        batch_op.drop_column("status_changed_at")
