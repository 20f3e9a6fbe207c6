"""SQL helpers shared by every store that is not an event store: engines, table creation for a
service's own small tables (outbox positions, known stays), Alembic migrations for the
schemas that evolve (the pathway read model, the audit log), and `Snapshot`: a small table's
contents kept in memory for a bounded time (the revocation list, the organisation directory
the token verifier maps organisation numbers with)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.pool import StaticPool

T = TypeVar("T")

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


class Snapshot(Generic[T]):
    """What `read` returns, kept in memory and read again by the first `get` that finds the
    copy older than `refresh` seconds: a bounded staleness for one query per `refresh` at most,
    not one per call. A failed read propagates (the caller is not answered from a copy older
    than the bound) and the next `get` tries again."""

    def __init__(
        self, read: Callable[[], T], refresh: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._read = read
        self._refresh = refresh
        self._clock = clock
        self._value: T | None = None
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def get(self, max_age: float | None = None) -> T:
        """The copy, read again first when it is older than `refresh` (or `max_age`)."""
        with self._lock:
            now = self._clock()
            bound = self._refresh if max_age is None else min(max_age, self._refresh)
            if self._value is None or now - self._read_at > bound:
                self._value = self._read()
                self._read_at = now
            return self._value

    def update(self, change: Callable[[T], T]) -> None:
        """Change the copy in place (a write this process made), if there is one."""
        with self._lock:
            if self._value is not None:
                self._value = change(self._value)
