"""SQL helpers shared by every store that is not an event store: engines, table creation for a
service's own small tables (outbox positions, known stays), and Alembic migrations for the
schemas that evolve (the pathway read model, the audit log)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.pool import StaticPool

#: Any constant: the advisory lock every carepath process takes while it changes a schema.
_SCHEMA_LOCK = 0x63617265


def engine(url: str, **pool: Any) -> sa.Engine:
    """An engine for `url`. PostgreSQL URLs use psycopg 3. A SQLite file gets WAL and a busy
    timeout, so one writer and many readers (several processes) work side by side instead of
    failing at once; `sqlite://` (in memory, tests) is one connection shared by every thread."""
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url == "sqlite://":
        return sa.create_engine(
            url, connect_args={"check_same_thread": False}, poolclass=StaticPool
        )
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True, **pool)
    created = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @sa.event.listens_for(created, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return created


def _schema_lock(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))


def create_tables(metadata: sa.MetaData, engine: sa.Engine) -> None:
    """Create the missing tables. Two processes starting together on one database (a gRPC
    server and its nameko reactions) race in CREATE TABLE: on PostgreSQL the creation runs
    under an advisory lock; on SQLite the loser of the race looks again."""
    for attempt in range(2):
        try:
            with engine.begin() as conn:
                _schema_lock(conn)
                metadata.create_all(conn)
            return
        except sa.exc.OperationalError:
            # SQLite has no advisory lock: another process created the table between our
            # check and our CREATE. Checking again finds it.
            if attempt or engine.dialect.name != "sqlite":
                raise


def migrate(engine: sa.Engine, migrations: Path, version_table: str = "alembic_version") -> None:
    """Bring a schema to its newest Alembic revision (under the schema lock on PostgreSQL,
    since every process of a service migrates as it starts). Each schema keeps its own
    version table, so two schemas may share a database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    cfg.attributes["version_table"] = version_table
    with engine.begin() as connection:
        _schema_lock(connection)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
