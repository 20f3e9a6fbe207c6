"""The organisation directory keeps each organisation's number in Enhetsregisteret (`orgnr`):
HelseID's access tokens name the caller by it, and every process maps it to the HER-id and kind
from here (shared/auth.py). Entries folded before have none until the registry's events are
folded again (the projector re-folds the directory from its stored events on the next
directory event; version 1 events read as having no number).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("registry_organisations", sa.Column("orgnr", sa.String(9), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("registry_organisations") as batch:
        batch.drop_column("orgnr")
