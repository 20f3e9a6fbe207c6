"""A municipality's monthly numbers (PathwayService/Statistics) read the read model in one
query per measure: each PLO message keeps when its receipt came and when it was due, and the
payment periods and messages get indexes by the municipality they concern.

The new message columns start empty: the fold's format rose (services/pathway/folding/codec.py),
so `python -m services.pathway migrate` folds every patient again (`refold_stale`) and fills
them.

Revision ID: 0016
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pathway_messages") as batch:
        batch.add_column(sa.Column("answered_at", sa.String(32), nullable=True))
        batch.add_column(sa.Column("receipt_due", sa.String(32), nullable=True))
    op.create_index("ix_pathway_messages_receiver", "pathway_messages", ["to_her_id", "sent_at"])
    op.create_index("ix_pathway_payments_payer", "pathway_payments", ["payer_her_id", "ready_on"])
    op.create_index(
        "ix_pathway_payments_municipality", "pathway_payments", ["municipality_her_id", "ready_on"]
    )


def downgrade() -> None:
    op.drop_index("ix_pathway_payments_municipality", "pathway_payments")
    op.drop_index("ix_pathway_payments_payer", "pathway_payments")
    op.drop_index("ix_pathway_messages_receiver", "pathway_messages")
    with op.batch_alter_table("pathway_messages") as batch:
        batch.drop_column("receipt_due")
        batch.drop_column("answered_at")
