"""Payments by the rules: each readiness period stores the regulation's conditions it fails
(`not_payable`, `missing_content`), and the daily rates become reference data in
`payment_rates`, seeded from shared/rules.toml, to which an operator adds a year without a
release (`python -m services.pathway rates add`).

The stored periods get their conditions when `python -m services.pathway migrate` folds every
patient again (the fold's state format changed with them: services/pathway/folding/codec.py).

Revision ID: 0014
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from shared import rules
from shared.times import utc_iso

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pathway_payments") as batch:
        batch.add_column(
            sa.Column("not_payable", sa.String(200), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("missing_content", sa.String(200), nullable=False, server_default="")
        )
    rates = op.create_table(
        "payment_rates",
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("daily_rate_nok", sa.Integer, nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("added_by", sa.String(20), nullable=False),
        sa.Column("added_at", sa.String(32), nullable=False),
    )
    source = str(rules.rules()["discharge_payment"]["source"])[:500]
    now = utc_iso(datetime.now(UTC))
    op.bulk_insert(
        rates,
        [
            {
                "year": year,
                "daily_rate_nok": nok,
                "source": source,
                "added_by": "rules.toml",
                "added_at": now,
            }
            for year, nok in sorted(rules.published_rates().items())
        ],
    )


def downgrade() -> None:
    op.drop_table("payment_rates")
    with op.batch_alter_table("pathway_payments") as batch:
        batch.drop_column("missing_content")
        batch.drop_column("not_payable")
