"""The worklist's order as an index: ListPathways reads a municipality's patients with the
earliest due task first (patients with no task last, then by key), and a page of that order
is read by walking this index from its start, checking each patient's membership and blocks,
until the page is full — not by reading every patient of the read model and sorting them
(`SCAN pathway_patients` and a temporary B-tree: a first page cost what the whole read model
cost; bench `--workload scale`).

Revision ID: 0017
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

#: The expressions of views.WORKLIST_ORDER, exactly as the query writes them (both SQLite and
#: PostgreSQL use an index for ORDER BY only when its terms are the index's).
ORDER = (sa.text("(next_due IS NULL)"), sa.text("next_due"), sa.text("patient_key"))


def upgrade() -> None:
    op.create_index("ix_pathway_patients_worklist", "pathway_patients", list(ORDER))


def downgrade() -> None:
    op.drop_index("ix_pathway_patients_worklist", table_name="pathway_patients")
