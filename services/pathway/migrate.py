"""Bring the read model's schema to the newest Alembic revision."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from shared.sql import migrate

MIGRATIONS = Path(__file__).with_name("migrations")


def upgrade(engine: Engine) -> None:
    migrate(engine, MIGRATIONS)
