"""MRNs unique regardless of case: a compared key, and twins registered before marked, not merged

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 04:30:00.000000

Two live patients whose MRNs differ only in case (`ab12`, `AB12`) were possible before. They
are never merged or edited here (COI-1: an identity is voided by QA, with a reason, and redone):
the earliest registration keeps the key; each later one is marked `mrn_twin_of` the earliest,
shown on the patient, and left out of the unique index until QA voids the wrong one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE_KEY = "voided_at IS NULL AND mrn_twin_of IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mrn_key", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("mrn_twin_of", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_patient_mrn_twin_of_patient"), "patient", ["mrn_twin_of"], ["id"]
        )
    # MRNs are ASCII letters, digits and . / - (patients.schemas.MRN): upper() is the key.
    op.execute("UPDATE patient SET mrn_key = upper(trim(mrn))")
    op.execute(
        "UPDATE patient SET mrn_twin_of = (SELECT min(p.id) FROM patient p "
        "WHERE p.mrn_key = patient.mrn_key AND p.voided_at IS NULL) "
        "WHERE voided_at IS NULL AND id > (SELECT min(p.id) FROM patient p "
        "WHERE p.mrn_key = patient.mrn_key AND p.voided_at IS NULL)"
    )
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.alter_column("mrn_key", existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_index("uq_patient_mrn_live")
        batch_op.create_index(batch_op.f("ix_patient_mrn_key"), ["mrn_key"], unique=False)
        batch_op.create_index(
            "uq_patient_mrn_key_live",
            ["mrn_key"],
            unique=True,
            sqlite_where=sa.text(_LIVE_KEY),
            postgresql_where=sa.text(_LIVE_KEY),
        )


def downgrade() -> None:
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_index("uq_patient_mrn_key_live")
        batch_op.drop_index(batch_op.f("ix_patient_mrn_key"))
        batch_op.create_index(
            "uq_patient_mrn_live",
            ["mrn"],
            unique=True,
            sqlite_where=sa.text("voided_at IS NULL"),
            postgresql_where=sa.text("voided_at IS NULL"),
        )
        batch_op.drop_constraint(batch_op.f("fk_patient_mrn_twin_of_patient"), type_="foreignkey")
        batch_op.drop_column("mrn_twin_of")
        batch_op.drop_column("mrn_key")
