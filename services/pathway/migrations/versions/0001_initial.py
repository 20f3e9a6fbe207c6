"""Initial pathway read model: events, timeline, referrals, patients, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pathway_events",
        sa.Column("event_id", sa.String(100), primary_key=True),
        sa.Column("patient_key", sa.String(120), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("aggregate_id", sa.String(64), nullable=False),
        sa.Column("aggregate_version", sa.Integer, nullable=False),
        sa.Column("occurred_at", sa.String(32), nullable=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        sa.Column("envelope", sa.Text, nullable=False),
    )
    op.create_index("ix_pathway_events_patient_key", "pathway_events", ["patient_key"])
    op.create_table(
        "pathway_patients",
        sa.Column("patient_key", sa.String(120), primary_key=True),
        sa.Column("system", sa.String(60), nullable=False),
        sa.Column("value", sa.String(40), nullable=False),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.Column("open_referrals", sa.Integer, nullable=False),
        sa.Column("first_occurred_at", sa.String(32), nullable=False),
        sa.Column("last_occurred_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "pathway_timeline",
        sa.Column("patient_key", sa.String(120), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("event_id", sa.String(100), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("level", sa.String(20), nullable=False),
        sa.Column("actor_her_id", sa.String(20), nullable=False),
        sa.Column("actor_hpr", sa.String(20), nullable=True),
        sa.Column("occurred_at", sa.String(32), nullable=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        sa.Column("aggregate_id", sa.String(64), nullable=False),
        sa.Column("summary", sa.String(300), nullable=False),
    )
    op.create_table(
        "pathway_referrals",
        sa.Column("referral_id", sa.String(64), primary_key=True),
        sa.Column("patient_key", sa.String(120), nullable=False),
        sa.Column("state", sa.String(30), nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("cancer_pathway", sa.String(20), nullable=True),
        sa.Column("sender_her_id", sa.String(20), nullable=False),
        sa.Column("receiver_her_id", sa.String(20), nullable=False),
        sa.Column("sent_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("is_open", sa.Boolean, nullable=False),
    )
    op.create_index("ix_pathway_referrals_patient_key", "pathway_referrals", ["patient_key"])
    op.create_table(
        "pathway_audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("read_at", sa.String(32), nullable=False),
        sa.Column("patient_key", sa.String(120), nullable=False),
        sa.Column("actor_her_id", sa.String(20), nullable=False),
        sa.Column("actor_org_kind", sa.String(20), nullable=False),
        sa.Column("actor_hpr", sa.String(20), nullable=True),
        sa.Column("purpose", sa.String(200), nullable=False),
        sa.Column("operation", sa.String(100), nullable=False),
    )
    op.create_index("ix_pathway_audit_log_patient_key", "pathway_audit_log", ["patient_key"])


def downgrade() -> None:
    for table in (
        "pathway_audit_log",
        "pathway_referrals",
        "pathway_timeline",
        "pathway_patients",
        "pathway_events",
    ):
        op.drop_table(table)
