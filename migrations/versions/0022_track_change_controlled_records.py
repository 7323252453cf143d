"""track change-controlled records: baseline snapshots of specifications and GMP settings

Revision ID: 0022
Revises: 0017
Create Date: 2026-12-02 17:40:00.000000

AUD-7 (ADR 0018): record-state verification now covers the change-controlled records of QC-3
(`specification`, `specification_test`, `gmp_setting`; `app/audit/records.py::TRACKED`). Their
rows already in the database were written before they were tracked, so each gets a
`records.baseline` snapshot in the global chain here; verification compares them from now on.
No schema change.
"""

from collections.abc import Sequence

from alembic import op
from sqlmodel import Session

import app.models  # noqa: F401  (every tracked table mapped for the baseline)
from app.audit import service as audit

revision: str = "0022"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEWLY_TRACKED = ("specification", "specification_test", "gmp_setting")


def upgrade() -> None:
    # A savepoint of the migration's transaction, released by the commit (the events are
    # appended by write_baseline itself).
    with Session(bind=op.get_bind(), join_transaction_mode="create_savepoint") as session:
        audit.write_baseline(session, tables=NEWLY_TRACKED)
        session.commit()


def downgrade() -> None:
    # The baseline events stay: the audit trail is append-only, whatever the schema.
    pass
