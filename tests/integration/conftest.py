"""Fixtures the integration tests share: the pathway read model on each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from services.pathway import migrate, readmodel


@pytest.fixture
def engine(backend: dict[str, str]) -> Iterator[Engine]:
    """The pathway read model, migrated, on the test's backend."""
    engine = readmodel.create_engine(backend["pathway"])
    migrate.upgrade(engine)
    yield engine
    engine.dispose()
