"""Alembic environment for the pathway read model (run through services.pathway.migrate)."""

from __future__ import annotations

from alembic import context

from services.pathway.readmodel import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    version_table=context.config.attributes["version_table"],
)
with context.begin_transaction():
    context.run_migrations()
