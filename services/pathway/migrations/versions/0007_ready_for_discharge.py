"""Whether and since when the patient waits in hospital, ready for discharge (the worklist).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pathway_patients") as batch:
        batch.add_column(sa.Column("ready_for_discharge_since", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pathway_patients") as batch:
        batch.drop_column("ready_for_discharge_since")
