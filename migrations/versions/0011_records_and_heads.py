"""records and heads: chain heads, append-only GMP tables, a baseline snapshot of every record

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 04:30:00.000000

AUD-7 (ADR 0018): `audit_head` keeps each chain's count and last hash, filled here from the
events already written; custody events, infusions, QC results, release decisions and physician
acceptances refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL), like audit_event and signature;
and every tracked row already in the database gets a `records.baseline` snapshot in its chain, so
verification can compare it from now on.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlmodel import Session

import app.models  # noqa: F401  (every tracked table mapped for the baseline)
from app.audit import service as audit

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Corrections are new rows naming the row they correct; the rows themselves never change.
APPEND_ONLY = (
    "custody_event",
    "infusion",
    "qc_result",
    "release_decision",
    "physician_acceptance",
)


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("count", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "last_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("last_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_audit_head")),
    )
    for table in APPEND_ONLY:
        _make_append_only(table)
    connection = op.get_bind()
    audit.rebuild_heads(connection)
    # A savepoint of the migration's transaction, released by the commit (the events are
    # appended by write_baseline itself).
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        audit.write_baseline(session)
        session.commit()


def _make_append_only(table: str) -> None:
    refusal = f"{table} is append-only: its rows cannot be updated or deleted (AUD-7)"
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{refusal}'); END"
            )
        return
    op.execute(
        f"CREATE FUNCTION {table}_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{refusal}' USING ERRCODE = 'insufficient_privilege'; END $$"
    )
    op.execute(
        f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {table}_refuse_change()"
    )
    op.execute(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_refuse_change()"
    )


def _drop_append_only(table: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        return
    op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    op.execute(f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}")
    op.execute(f"DROP FUNCTION IF EXISTS {table}_refuse_change()")


def downgrade() -> None:
    # The baseline events stay: the audit trail is append-only, whatever the schema.
    for table in APPEND_ONLY:
        _drop_append_only(table)
    op.drop_table("audit_head")
