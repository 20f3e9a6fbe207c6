"""SQL helpers shared by every store that is not an event store: engines, table creation for a
service's own small tables (outbox positions, known stays), Alembic migrations for the
schemas that evolve (the pathway read model, the audit log), and `Snapshot`: a small table's
contents kept in memory for a bounded time (the revocation list, the organisation directory
the token verifier maps organisation numbers with)."""

from __future__ import annotations

import fcntl
import logging
import os
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

import psycopg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from psycopg_pool import ConnectionPool, PoolTimeout
from sqlalchemy.pool import NullPool, StaticPool

from shared import config

#: Any constant: the advisory lock every carepath process takes while it changes a schema
#: (its own tables and the event store's; PostgreSQL's advisory locks are per database).
SCHEMA_LOCK = 0x63617265

T = TypeVar("T")


#: Seconds a caller waits for a pooled connection (as eventsourcing's POSTGRES_CONNECT_TIMEOUT).
CONNECT_TIMEOUT = 5.0
#: Seconds psycopg's pool keeps trying to open one connection (its delays double from 1 s)
#: before it gives that attempt up; the next caller starts a new one. Its default (5 minutes)
#: would leave a pool waiting out a long delay after the database is back: the back-off that
#: matters is the caller's (shared.retry), capped at seconds.
RECONNECT_TIMEOUT = 5.0

# psycopg's pool reports each failed connection attempt and each connection it closes; an
# outage is reported once per attempt by whoever retries (shared.retry), not by the pool.
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


#: Seconds a pooled connection may rest unused and still be handed out without a round trip
#: to the server (`_PooledConnection.suspect`).
TRUSTED_IDLE = 5.0


class _PooledConnection(psycopg.Connection[Any]):
    """A connection of a `_PostgresPool`: closing it gives it back to its pool, a broken one
    included (psycopg's `close_returns` skips a connection already closed by the server, which
    the pool would then count as in use for ever)."""

    #: When it was last given back to its pool (monotonic seconds; 0: never).
    returned_at = 0.0

    def close(self) -> None:
        pool = getattr(self, "_pool", None)
        if self.closed and pool is not None:
            pool.putconn(self)  # the pool sees it broken and forgets it
            return
        self.returned_at = time.monotonic()
        super().close()

    def suspect(self) -> bool:
        """Whether this idle connection may be broken, so it is checked with a round trip
        before it is handed out. A session the server ended (pg_terminate_backend, a restart,
        idle_session_timeout) leaves its error message and end of file on the socket, which a
        zero-timeout poll sees without asking the server; a connection that rested longer than
        TRUSTED_IDLE (a network that dropped it silently) or was never used is checked too.
        Under load a connection is back in use within milliseconds, so the round trip a check
        costs on every checkout (40-78% of an `Engine.begin`) is spent only where it helps."""
        if self.closed or time.monotonic() - self.returned_at > TRUSTED_IDLE:
            return True
        try:
            readable, _, _ = select.select([self.pgconn.socket], [], [], 0)
        except (OSError, ValueError, psycopg.Error):
            return True
        return bool(readable)


class _PostgresPool:
    """psycopg's pool under a SQLAlchemy engine (SQLAlchemy's NullPool hands every checkout
    to it and a close gives the connection back: psycopg's `close_returns`, made for this).
    Unlike SQLAlchemy's QueuePool it closes connections left unused beyond `idle`, so an idle
    process holds only what its pool keeps (shared.config.POOLS); a connection the server may
    have ended is checked before it is handed out (`_PooledConnection.suspect`), so one it
    ended is replaced, not used."""

    def __init__(self, conninfo: str, pool: config.Pool, name: str) -> None:
        self.conninfo = conninfo
        self._pool_settings = pool
        self._name = name
        self._pool: ConnectionPool[_PooledConnection] | None = None

    def connect(self) -> _PooledConnection:
        """A live connection of the pool: one the server ended (a restart, a terminated
        session) is dropped and the next taken at once (psycopg's own `check` would sleep
        between tries with its back-off). When none comes within the timeout, the server is
        asked directly, so the caller learns why (refused, bad certificate, "too many
        clients")."""
        if self._pool is None:
            self._pool = ConnectionPool(
                self.conninfo,
                min_size=self._pool_settings.idle,
                max_size=self._pool_settings.size,
                max_idle=config.pool_max_idle(),
                reconnect_timeout=RECONNECT_TIMEOUT,
                close_returns=True,
                connection_class=_PooledConnection,
                name=self._name,
                open=False,
            )
        pool = self._pool
        pool.open(wait=False)
        try:
            for _ in range(pool.max_size + 1):
                connection = pool.getconn(timeout=CONNECT_TIMEOUT)
                if not connection.suspect():
                    return connection
                try:
                    ConnectionPool.check_connection(connection)
                except psycopg.Error:
                    pool.putconn(connection)  # broken: the pool replaces it
                    continue
                return connection
            return pool.getconn(timeout=CONNECT_TIMEOUT)
        except PoolTimeout:
            psycopg.connect(self.conninfo, connect_timeout=int(CONNECT_TIMEOUT)).close()
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


#: The psycopg pool under each PostgreSQL engine `engine` made (for `ping`).
_POSTGRES_POOLS: weakref.WeakKeyDictionary[sa.Engine, _PostgresPool] = weakref.WeakKeyDictionary()


def ping(engine: sa.Engine) -> None:
    """Raise unless the database of `engine` answers (a health check, every few seconds).
    On PostgreSQL with a connection of its own, opened and closed: a pooled one taken that
    often would keep every pool from ever shrinking to its idle size (shared.config.POOLS), so
    an idle system would hold a connection per check."""
    pg = _POSTGRES_POOLS.get(engine)
    if pg is None:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return
    with psycopg.connect(pg.conninfo, connect_timeout=int(CONNECT_TIMEOUT)) as conn:
        conn.execute("SELECT 1")


def libpq_conninfo(url: sa.URL) -> str:
    """The libpq connection string of a SQLAlchemy PostgreSQL URL (its query's parameters,
    `sslmode=verify-full` above all, included)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def engine(url: str, pool: config.Pool | None = None) -> sa.Engine:
    """An engine for `url`. PostgreSQL URLs use psycopg 3, pooled by psycopg's pool sized
    `pool` (default: `POOLS["store-tool"]`, one connection, none kept when idle). A SQLite
    file gets WAL and a busy timeout, so one writer and many readers (several processes) work
    side by side instead of failing at once; `sqlite://` (in memory, tests) is one connection
    shared by every thread."""
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url == "sqlite://":
        return sa.create_engine(
            url, connect_args={"check_same_thread": False}, poolclass=StaticPool
        )
    if not url.startswith("sqlite"):
        parsed = sa.make_url(url)
        pg = _PostgresPool(
            libpq_conninfo(parsed), pool or config.POOLS["store-tool"], str(parsed.database)
        )
        created = sa.create_engine(url, creator=pg.connect, poolclass=NullPool)
        sa.event.listen(created, "engine_disposed", lambda _engine: pg.close())
        _POSTGRES_POOLS[created] = pg
        return created
    created = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @sa.event.listens_for(created, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return created


#: Rows a bulk insert sends to SQLite in one executemany (bounds the tuples held at once).
BULK_ROWS = 10_000


def bulk_insert(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` (every row with the columns of the first, as SQLAlchemy's executemany
    takes them) in the connection's transaction, without SQLAlchemy's per-row parameter
    compilation: each value passes its column type's bind processor (JSON, booleans as the
    dialect stores them), then PostgreSQL takes the rows by COPY and SQLite by one prepared
    statement's executemany. The same rows as `conn.execute(table.insert(), rows)` — a
    projector batch, a rebuild's hundreds of thousands — at a fraction of the CPU."""
    if not rows:
        return
    keys = list(rows[0])
    dialect = conn.dialect
    processors = [table.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in keys]
    plain = all(process is None for process in processors)

    def values(row: Mapping[str, Any]) -> tuple[Any, ...]:
        if plain:
            return tuple(row[k] for k in keys)
        return tuple(
            row[k] if process is None else process(row[k])
            for k, process in zip(keys, processors, strict=True)
        )

    driver = conn.connection.driver_connection
    columns = ", ".join(dialect.identifier_preparer.quote(k) for k in keys)
    name = dialect.identifier_preparer.format_table(table)
    if dialect.name == "postgresql":
        assert isinstance(driver, psycopg.Connection)
        with driver.cursor() as cursor, cursor.copy(f"COPY {name} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(values(row))
        return
    statement = f"INSERT INTO {name} ({columns}) VALUES ({', '.join('?' * len(keys))})"
    lite = conn.connection.dbapi_connection
    assert lite is not None
    sqlite_cursor = lite.cursor()
    try:
        for i in range(0, len(rows), BULK_ROWS):
            sqlite_cursor.executemany(statement, [values(row) for row in rows[i : i + BULK_ROWS]])
    finally:
        sqlite_cursor.close()


@contextmanager
def sqlite_schema_lock(database: str | None) -> Iterator[None]:
    """One process at a time changes the schema of this SQLite file: an exclusive lock on a
    file beside it (`<database>.schema-lock`), which the others wait for. SQLite has no
    advisory lock, and its own locks fail a second creator ("database is locked") instead of
    making it wait; in-memory databases need none."""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        yield
        return
    path = Path(f"{database}.schema-lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextmanager
def postgres_schema_lock(connect: Any) -> Iterator[None]:
    """One process at a time changes the schema of this PostgreSQL database: the advisory
    lock SCHEMA_LOCK, held by a connection of its own (`connect()`, a psycopg connection) for
    as long as the block runs, so whatever creates the tables may use any other connection."""
    with connect() as lock_connection:
        lock_connection.autocommit = True
        lock_connection.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        try:
            yield
        finally:
            lock_connection.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))


def _schema_lock(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK)))


def create_tables(metadata: sa.MetaData, engine: sa.Engine) -> None:
    """Create the missing tables, one process at a time: any number of processes may start
    together on one database (a service's server, relay and reactions). On PostgreSQL the
    creation runs under the advisory schema lock; on SQLite under the file lock beside it."""
    with sqlite_schema_lock(_sqlite_file(engine)), engine.begin() as conn:
        _schema_lock(conn)
        metadata.create_all(conn)


def _sqlite_file(engine: sa.Engine) -> str | None:
    return engine.url.database if engine.dialect.name == "sqlite" else None


def migrate(engine: sa.Engine, migrations: Path, version_table: str = "alembic_version") -> None:
    """Bring a schema to its newest Alembic revision, under the schema lock (every process
    of a service migrates as it starts, and `migrate` does it once before them). Each schema
    keeps its own version table, so two schemas may share a database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    cfg.attributes["version_table"] = version_table
    with sqlite_schema_lock(_sqlite_file(engine)), engine.begin() as connection:
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
