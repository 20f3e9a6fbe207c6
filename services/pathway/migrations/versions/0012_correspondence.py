"""The correspondence between the municipality and the GP (services/correspondence), one row per
conversation: who wrote to whom and when, and for a Forespørsel its answer deadline and when it
was answered. Patients folded before have none (there was no such service); the messages
themselves are in `pathway_messages` as every PLO message is.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pathway_correspondence",
        sa.Column("patient_key", sa.String(120), primary_key=True),
        sa.Column("correspondence_id", sa.String(64), primary_key=True),
        sa.Column("message_type", sa.String(40), nullable=False),
        sa.Column("from_her_id", sa.String(20), nullable=False),
        sa.Column("from_kind", sa.String(20), nullable=False),
        sa.Column("to_her_id", sa.String(20), nullable=False),
        sa.Column("to_kind", sa.String(20), nullable=False),
        sa.Column("sent_at", sa.String(32), nullable=False),
        sa.Column("answer_due", sa.String(32), nullable=True),
        sa.Column("answered_at", sa.String(32), nullable=True),
    )
    op.create_index(
        "ix_pathway_correspondence_to", "pathway_correspondence", ["to_her_id", "sent_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_pathway_correspondence_to", table_name="pathway_correspondence")
    op.drop_table("pathway_correspondence")
