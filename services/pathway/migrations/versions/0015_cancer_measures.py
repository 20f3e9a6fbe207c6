"""Cancer pathways measured by their total (time from the referral received to treatment start
against the standard total), ended without treatment, and referrals resent after a rejected
receipt: the referral rows' new columns, indexed for the share within standard per hospital.

Revision ID: 0015
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pathway_referrals") as batch:
        batch.add_column(sa.Column("cancer_total", sa.JSON, nullable=True))
        batch.add_column(sa.Column("cancer_treatment_started_at", sa.String(32), nullable=True))
        batch.add_column(sa.Column("cancer_within_standard", sa.Boolean, nullable=True))
        batch.add_column(sa.Column("cancer_end_reason", sa.String(30), nullable=True))
        batch.add_column(sa.Column("cancer_ended_at", sa.String(32), nullable=True))
        batch.add_column(sa.Column("resent", sa.Integer, nullable=False, server_default="0"))
        batch.create_index(
            "ix_pathway_referrals_cancer_treatment",
            ["receiver_her_id", "cancer_treatment_started_at"],
        )
        batch.create_index(
            "ix_pathway_referrals_cancer_ended", ["receiver_her_id", "cancer_ended_at"]
        )


def downgrade() -> None:
    with op.batch_alter_table("pathway_referrals") as batch:
        batch.drop_index("ix_pathway_referrals_cancer_ended")
        batch.drop_index("ix_pathway_referrals_cancer_treatment")
        for column in (
            "resent",
            "cancer_ended_at",
            "cancer_end_reason",
            "cancer_within_standard",
            "cancer_treatment_started_at",
            "cancer_total",
        ):
            batch.drop_column(column)
