"""change control: specification status, GMP settings as versioned records

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 13:30:00.000000

QC-3 (ADR 0022): a specification version is `draft`, `approved` (in force) or `superseded`; at
most one is approved (a partial unique index). On an existing database the newest version stays
in force if QA signed it; the shipped default that nobody signed becomes a draft QA must
approve; every older version is superseded. The GMP settings that were environment variables
become `gmp_setting` rows; their shipped defaults are installed as drafts on first use.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ONE_APPROVED = "status = 'approved'"


def upgrade() -> None:
    op.create_table(
        "gmp_setting",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_name", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["app_user.id"], name=op.f("fk_gmp_setting_created_by_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gmp_setting")),
        sa.UniqueConstraint(
            "group_name", "version", name=op.f("uq_gmp_setting_group_name_version")
        ),
    )
    op.create_index(
        "uq_gmp_setting_one_approved",
        "gmp_setting",
        ["group_name"],
        unique=True,
        sqlite_where=sa.text(ONE_APPROVED),
        postgresql_where=sa.text(ONE_APPROVED),
    )
    with op.batch_alter_table("specification", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "status",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="draft",
            )
        )
    signed = (
        "EXISTS (SELECT 1 FROM signature s WHERE s.record_type = 'specification' "
        "AND s.record_id = specification.id)"
    )
    newest = (
        "version = (SELECT max(o.version) FROM specification o WHERE o.product = "
        "specification.product)"
    )
    op.execute(f"UPDATE specification SET status = 'superseded' WHERE NOT ({newest})")
    op.execute(f"UPDATE specification SET status = 'approved' WHERE {newest} AND {signed}")
    with op.batch_alter_table("specification", schema=None) as batch_op:
        batch_op.alter_column("status", server_default=None)
    op.create_index(
        "uq_specification_one_approved",
        "specification",
        ["product"],
        unique=True,
        sqlite_where=sa.text(ONE_APPROVED),
        postgresql_where=sa.text(ONE_APPROVED),
    )


def downgrade() -> None:
    op.drop_index("uq_specification_one_approved", table_name="specification")
    with op.batch_alter_table("specification", schema=None) as batch_op:
        batch_op.drop_column("status")
    op.drop_index("uq_gmp_setting_one_approved", table_name="gmp_setting")
    op.drop_table("gmp_setting")
