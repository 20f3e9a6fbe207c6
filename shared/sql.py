"""SQL helpers shared by the services' own small tables (outbox positions, known stays)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

#: Any constant: the advisory lock every carepath process takes while it creates tables.
_SCHEMA_LOCK = 0x63617265


def engine(url: str) -> sa.Engine:
    """An engine for a service's own small tables beside its event store. SQLite waits for
    the file's lock instead of failing at once; `sqlite://` (in memory, tests) is one
    connection shared by every thread."""
    if url == "sqlite://":
        return sa.create_engine(
            url, connect_args={"check_same_thread": False}, poolclass=StaticPool
        )
    connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
    return sa.create_engine(url, connect_args=connect_args)


def create_tables(metadata: sa.MetaData, engine: sa.Engine) -> None:
    """Create the missing tables. Two processes starting together on one PostgreSQL database
    (a gRPC server and its nameko reactions) would race in CREATE TABLE and one would fail on
    the catalogue's unique index, so on PostgreSQL the creation runs under an advisory lock."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
        metadata.create_all(conn)
