"""The read model holds the whole answer: stays, PLO messages with their receipts, payment
periods and the medication list (now and at any clinical time) get tables of their own, and
each patient's fold state is kept so the projector adds a batch on top of it.

The new tables start empty: `python -m services.pathway migrate` (part of `python -m services
migrate`) then folds every patient without a current state once from their stored events
(services/pathway/projector.py, `refold_stale`).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _key() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("patient_key", sa.String(120), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "pathway_stays",
        _key(),
        sa.Column("stay_id", sa.String(64), primary_key=True),
        sa.Column("hospital_her_id", sa.String(20), nullable=False),
        sa.Column("ward", sa.String(200), nullable=False),
        sa.Column("admitted_at", sa.String(32), nullable=False),
        sa.Column("closed_at", sa.String(32), nullable=True),
    )
    op.create_table(
        "pathway_messages",
        _key(),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("event_id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("to_her_id", sa.String(20), nullable=False),
        sa.Column("to_kind", sa.String(20), nullable=False),
        sa.Column("sent_at", sa.String(32), nullable=False),
        sa.Column("status", sa.String(20), nullable=True),
    )
    op.create_table(
        "pathway_payments",
        _key(),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("stay_id", sa.String(64), nullable=False),
        sa.Column("municipality_her_id", sa.String(20), nullable=False),
        sa.Column("payer_her_id", sa.String(20), nullable=True),
        sa.Column("ready_on", sa.String(10), nullable=False),
        sa.Column("ends_on", sa.String(10), nullable=True),
    )
    op.create_table(
        "pathway_medication_lists",
        _key(),
        sa.Column("list_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "pathway_medication_entries",
        _key(),
        sa.Column("entry_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_table(
        "pathway_medication_versions",
        _key(),
        sa.Column("entry_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("valid_from", sa.String(32), nullable=False),
        sa.Column("atc_code", sa.String(20), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("dose", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("source_her_id", sa.String(20), nullable=False),
        sa.Column("source_kind", sa.String(20), nullable=False),
        sa.Column("prescribed_at", sa.String(32), nullable=False),
        sa.Column("prescribed_by", sa.JSON, nullable=False),
        sa.Column("last_changed_at", sa.String(32), nullable=False),
        sa.Column("last_changed_by", sa.JSON, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("state_reason", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_pathway_medication_versions_at",
        "pathway_medication_versions",
        ["patient_key", "entry_id", "valid_from", "seq"],
    )
    op.create_table(
        "pathway_medication_reconciliations",
        _key(),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("valid_from", sa.String(32), nullable=False),
        sa.Column("reconciled_by", sa.JSON, nullable=False),
        sa.Column("sources", sa.JSON, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_pathway_medication_reconciliations_at",
        "pathway_medication_reconciliations",
        ["patient_key", "valid_from", "seq"],
    )
    op.create_table(
        "pathway_patient_states",
        _key(),
        sa.Column("format", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "pathway_patient_states",
        "pathway_medication_reconciliations",
        "pathway_medication_versions",
        "pathway_medication_entries",
        "pathway_medication_lists",
        "pathway_payments",
        "pathway_messages",
        "pathway_stays",
    ):
        op.drop_table(table)
