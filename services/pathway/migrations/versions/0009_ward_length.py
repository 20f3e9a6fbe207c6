"""The ward where the patient lies holds as much as an admission may say (200 characters, the
admissions API's and the event contract's bound), not 100.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":  # SQLite does not bound VARCHAR
        op.alter_column(
            "pathway_patients",
            "location_ward",
            type_=sa.String(200),
            existing_type=sa.String(100),
            existing_nullable=True,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(
            "pathway_patients",
            "location_ward",
            type_=sa.String(100),
            existing_type=sa.String(200),
            existing_nullable=True,
        )
