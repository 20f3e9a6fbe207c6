"""The municipality's side: each patient's municipal services (vedtak, start, end) get a table,
and the patient row says when the patient died (the registers' death).

The new table and column start empty; the fold's state format rises with them (codec FORMAT
2), so `python -m services.pathway migrate` folds every patient once from their stored events
(services/pathway/projector.py, `refold_stale`).

Revision ID: 0013
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pathway_municipal_services",
        sa.Column("patient_key", sa.String(120), primary_key=True),
        sa.Column("service_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("municipality_her_id", sa.String(20), nullable=False),
        sa.Column("institution_her_id", sa.String(20), nullable=True),
        sa.Column("decided_at", sa.String(32), nullable=False),
        sa.Column("starts_on", sa.String(10), nullable=False),
        sa.Column("started_at", sa.String(32), nullable=True),
        sa.Column("ended_at", sa.String(32), nullable=True),
        sa.Column("end_reason", sa.String(30), nullable=True),
    )
    op.create_index(
        "ix_pathway_municipal_services_running", "pathway_municipal_services", ["kind", "state"]
    )
    with op.batch_alter_table("pathway_patients") as batch:
        batch.add_column(sa.Column("died_at", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pathway_patients") as batch:
        batch.drop_column("died_at")
    op.drop_index("ix_pathway_municipal_services_running", "pathway_municipal_services")
    op.drop_table("pathway_municipal_services")
