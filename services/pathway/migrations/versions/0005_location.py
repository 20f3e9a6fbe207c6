"""Where the patient is now.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pathway_patients") as batch:
        batch.add_column(
            sa.Column("location_kind", sa.String(30), nullable=False, server_default="UNSPECIFIED")
        )
        batch.add_column(sa.Column("location_her_id", sa.String(20), nullable=True))
        batch.add_column(sa.Column("location_ward", sa.String(100), nullable=True))
        batch.add_column(sa.Column("location_since", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pathway_patients") as batch:
        for column in ("location_since", "location_ward", "location_her_id", "location_kind"):
            batch.drop_column(column)
