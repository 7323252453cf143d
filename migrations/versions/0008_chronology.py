"""chronology (AUD-6): when the server recorded a custody event or a biopsy receipt, and the
reason of every late entry

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain ADD COLUMN (nullable, no batch copy) on both databases: a SQLite table copy would drop
# the append-only triggers of custody_event and infusion, and no existing row is rewritten (a
# row recorded before this revision has no recording time of its own, so none is invented).
COLUMNS = {
    "custody_event": [
        sa.Column("recorded_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("late_reason", sa.Text(), nullable=True),
    ],
    "step": [sa.Column("late_reason", sa.Text(), nullable=True)],
    "infusion": [sa.Column("late_reason", sa.Text(), nullable=True)],
    "biopsy": [
        sa.Column("receipt_recorded_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("receipt_late_reason", sa.Text(), nullable=True),
    ],
}


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        for column in columns:
            op.add_column(table, column)


def downgrade() -> None:
    for table, columns in reversed(COLUMNS.items()):
        with op.batch_alter_table(table) as batch_op:
            for column in reversed(columns):
                batch_op.drop_column(column.name)
