"""The audit log records the caller's organisation number (`actor_orgnr`), as HelseID's token
named the organisation (the directory mapped it to `actor_her_id` and `actor_kind`). Rows
written before have none (NULL), and their hashes stay as they were: a row's hash covers
`actor_orgnr` only when it is set (shared.audit.log.row_hash), so every old row verifies.
ADD COLUMN only: the append-only triggers (UPDATE, DELETE) stay as they are.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("actor_orgnr", sa.String(9), nullable=True))


def downgrade() -> None:
    # Dropping the column rewrites rows (SQLite batch mode copies the table); the triggers
    # refuse nothing here, since the rows are copied, not updated.
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("actor_orgnr")
