"""Open tasks with their due times.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pathway_tasks",
        sa.Column("task_id", sa.String(120), primary_key=True),
        sa.Column("patient_key", sa.String(120), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("description", sa.String(300), nullable=False),
        sa.Column("waiting_on_her_id", sa.String(20), nullable=False),
        sa.Column("waiting_on_kind", sa.String(20), nullable=False),
        sa.Column("since", sa.String(32), nullable=False),
        sa.Column("due", sa.String(32), nullable=False),
        sa.Column("aggregate_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_pathway_tasks_patient_key", "pathway_tasks", ["patient_key"])
    op.create_index("ix_pathway_tasks_due", "pathway_tasks", ["due"])
    # Existing patients get their tasks on the next rebuild (python -m services.pathway rebuild).


def downgrade() -> None:
    op.drop_table("pathway_tasks")
