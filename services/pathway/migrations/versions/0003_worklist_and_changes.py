"""Municipality, open-task count and next due time per patient; the change feed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pathway_patients") as batch:
        batch.add_column(sa.Column("municipality_her_id", sa.String(20), nullable=True))
        batch.add_column(sa.Column("open_tasks", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_due", sa.String(32), nullable=True))
        batch.create_index("ix_pathway_patients_municipality_her_id", ["municipality_her_id"])
    op.create_table(
        "pathway_changes",
        sa.Column("sequence", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("patient_key", sa.String(120), nullable=False),
        sa.Column("municipality_her_id", sa.String(20), nullable=True),
        sa.Column("changed_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pathway_changes")
    with op.batch_alter_table("pathway_patients") as batch:
        batch.drop_index("ix_pathway_patients_municipality_her_id")
        batch.drop_column("next_due")
        batch.drop_column("open_tasks")
        batch.drop_column("municipality_her_id")
