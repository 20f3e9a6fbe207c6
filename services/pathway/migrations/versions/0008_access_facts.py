"""The access facts the policy of every service reads: care relationships with their time
bounds, the patient's blocks, the organisation directory. The read log moves out of the read
model into the audit log of its own (shared/audit), so it is dropped here.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_relationships",
        sa.Column("patient_key", sa.String(120), nullable=False),
        sa.Column("her_id", sa.String(20), nullable=False),
        sa.Column("basis", sa.String(40), nullable=False),
        sa.Column("hpr", sa.String(20), nullable=True),
        sa.Column("valid_from", sa.String(32), nullable=False),
        sa.Column("valid_to", sa.String(32), nullable=True),
        sa.Column("source_id", sa.String(64), nullable=False),
    )
    op.create_index(
        "ix_access_relationships_patient", "access_relationships", ["patient_key", "her_id"]
    )
    op.create_index("ix_access_relationships_member", "access_relationships", ["her_id", "basis"])
    op.create_table(
        "access_blocks",
        sa.Column("patient_key", sa.String(120), primary_key=True),
        sa.Column("block_id", sa.String(64), primary_key=True),
        sa.Column("her_id", sa.String(20), nullable=True),
        sa.Column("hpr", sa.String(20), nullable=True),
        sa.Column("blocked_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "registry_organisations",
        sa.Column("her_id", sa.String(20), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("parent_her_id", sa.String(20), nullable=True),
    )
    op.drop_table("pathway_audit_log")


def downgrade() -> None:
    op.create_table(
        "pathway_audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("read_at", sa.String(32), nullable=False),
        sa.Column("patient_key", sa.String(120), nullable=False, index=True),
        sa.Column("actor_her_id", sa.String(20), nullable=False),
        sa.Column("actor_org_kind", sa.String(20), nullable=False),
        sa.Column("actor_hpr", sa.String(20), nullable=True),
        sa.Column("purpose", sa.String(200), nullable=False),
        sa.Column("operation", sa.String(100), nullable=False),
    )
    op.drop_table("registry_organisations")
    op.drop_table("access_blocks")
    op.drop_table("access_relationships")
