"""label prints append-only: a void is a new label_void row; a reprint carries its reason

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 04:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# AUD-7, LBL-5: the database itself refuses to change or remove a print or a void.
_TABLES = ("label_print", "label_void")
_FUNCTION = "label_record_refuse_change"


def upgrade() -> None:
    op.create_table(
        "label_void",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label_print_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("voided_by", sa.Integer(), nullable=False),
        sa.Column("voided_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["label_print_id"],
            ["label_print.id"],
            name=op.f("fk_label_void_label_print_id_label_print"),
        ),
        sa.ForeignKeyConstraint(
            ["voided_by"], ["app_user.id"], name=op.f("fk_label_void_voided_by_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_void")),
        sa.UniqueConstraint("label_print_id", name=op.f("uq_label_void_label_print_id")),
    )
    # Voids recorded on the print itself become rows of their own (a voided print always named
    # who voided it and why: the void call required both).
    op.execute(
        "INSERT INTO label_void (label_print_id, reason, voided_by, voided_at) "
        "SELECT id, COALESCE(void_reason, ''), COALESCE(voided_by, printed_by), voided_at "
        "FROM label_print WHERE voided_at IS NOT NULL ORDER BY id"
    )
    with op.batch_alter_table("label_print", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch_op.drop_constraint(
            batch_op.f("fk_label_print_voided_by_app_user"), type_="foreignkey"
        )
        batch_op.drop_column("void_reason")
        batch_op.drop_column("voided_by")
        batch_op.drop_column("voided_at")
    _make_append_only()


def _make_append_only() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in _TABLES:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{_refusal(table)}'); END"
                )
        return
    op.execute(
        f"CREATE FUNCTION {_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION '% is append-only: rows cannot be updated or deleted', TG_TABLE_NAME "
        "USING ERRCODE = 'insufficient_privilege'; END $$"
    )
    for table in _TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {_FUNCTION}()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {_FUNCTION}()"
        )


def _refusal(table: str) -> str:
    return f"{table} is append-only: rows cannot be updated or deleted"


def _drop_append_only() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in _TABLES:
            for verb in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
        return
    for table in _TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}")
    op.execute(f"DROP FUNCTION IF EXISTS {_FUNCTION}()")


def downgrade() -> None:
    _drop_append_only()
    with op.batch_alter_table("label_print", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("voided_at", app.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("voided_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("void_reason", sa.Text(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_label_print_voided_by_app_user"), "app_user", ["voided_by"], ["id"]
        )
        batch_op.drop_column("reason")
    of_print = "FROM label_void v WHERE v.label_print_id = label_print.id"
    op.execute(
        f"UPDATE label_print SET voided_at = (SELECT v.voided_at {of_print}), "
        f"voided_by = (SELECT v.voided_by {of_print}), void_reason = (SELECT v.reason {of_print})"
    )
    op.drop_table("label_void")
