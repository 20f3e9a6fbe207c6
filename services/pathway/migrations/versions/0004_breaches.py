"""Deadline breaches already announced.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pathway_breaches",
        sa.Column("task_id", sa.String(120), primary_key=True),
        sa.Column("due", sa.String(32), primary_key=True),
        sa.Column("announced_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pathway_breaches")
