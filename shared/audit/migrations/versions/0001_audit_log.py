"""The audit log: one row per call (and per patient a list disclosed), each chained to the one
before in its service's chain by a hash; a chain's head row holds its last sequence number and
hash, so a removed tail is seen too. Rows cannot be updated or deleted (triggers). Two indexes:
by patient (the citizen's access list, emergency grants in force) and a partial one of the
emergency grants alone (the supervisors' review); none on (chain, seq), which only `verify`
reads, in one pass in the order rows were written: every index is a page more written with
each call.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MESSAGE = "the audit log is append-only"


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("chain", sa.String(60), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("actor_her_id", sa.String(20), nullable=False),
        sa.Column("actor_kind", sa.String(20), nullable=False),
        sa.Column("actor_hpr", sa.String(20), nullable=True),
        sa.Column("patient_key", sa.String(120), nullable=True),
        sa.Column("call", sa.String(120), nullable=False),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("basis", sa.String(40), nullable=False),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("emergency_reason", sa.String(60), nullable=True),
        sa.Column("emergency_text", sa.Text, nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_patient", "audit_log", ["patient_key", "id"])
    emergency = sa.text("call = 'AccessService/RequestEmergencyAccess'")
    op.create_index(
        "ix_audit_log_emergency",
        "audit_log",
        ["actor_her_id", "id"],
        sqlite_where=emergency,
        postgresql_where=emergency,
    )
    op.create_table(
        "audit_head",
        sa.Column("chain", sa.String(60), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{MESSAGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )
    else:
        for when in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{when.lower()} BEFORE {when} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_table("audit_log")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
