"""The audit log: every call of every service, append-only and hash-chained, in a database of
its own (not the rebuildable read model: it is not derived from events and must outlive any
rebuild).

Each row says when, which request, who (organisation, kind, HPR, and the organisation number
when the caller's token named the organisation by one, as HelseID's do), which patient, which
call, its outcome (the gRPC status), the access basis, the coded purpose and, for akuttilgang,
the reason.

Every process writes its own hash chain (`chain`: its service's name and a random suffix, begun
when it starts): row n of a chain stores the hash of row n-1 of that chain and its own hash over
both; `audit_head` holds each chain's last sequence number and hash. A chain per writer, not one
for all, because a chain has one writer at a time: with a single chain every call of every
service waited for every other service's commit (on PostgreSQL that cost four tenths of the
throughput), and a writer that owns its chain neither locks nor reads it. `verify` recomputes
every chain and names every changed, removed or added row. Triggers refuse UPDATE and DELETE on
the rows.

Writes are grouped (shared.batching): the rows of a process's concurrent calls go in one
transaction, and a call returns only after its rows are committed — a read is never answered
before it is on record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shared import sql
from shared.batching import GroupWriter
from shared.times import utc_iso

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "audit_alembic_version"
#: The advisory lock family of the chains: one writer at a time extends a chain (PostgreSQL).
_CHAIN_LOCK = 0x61756469
GENESIS = "0" * 64
EMERGENCY_CALL = "AccessService/RequestEmergencyAccess"
#: The emergency grants (the condition of the partial index ix_audit_log_emergency).
_IS_EMERGENCY_GRANT = sa.text(f"call = '{EMERGENCY_CALL}'")

metadata = sa.MetaData()
audit_log = sa.Table(
    "audit_log",
    metadata,
    # The order rows were written in, across chains (the access lists' order and page tokens).
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("chain", sa.String(60), nullable=False),
    # The row's place in its chain: 1, 2, 3, ...
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("actor_her_id", sa.String(20), nullable=False),
    sa.Column("actor_kind", sa.String(20), nullable=False),
    sa.Column("actor_hpr", sa.String(20), nullable=True),
    sa.Column("patient_key", sa.String(120), nullable=True),
    sa.Column("call", sa.String(120), nullable=False),
    sa.Column("outcome", sa.String(40), nullable=False),
    sa.Column("basis", sa.String(40), nullable=False),
    sa.Column("purpose", sa.String(40), nullable=False),
    sa.Column("emergency_reason", sa.String(60), nullable=True),
    sa.Column("emergency_text", sa.Text, nullable=True),
    # Added by migration 0002; NULL in rows written before it, and for tokens without one.
    sa.Column("actor_orgnr", sa.String(9), nullable=True),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("chain", sa.String(60), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)


class Entry(NamedTuple):
    """One audit row before it is chained. Times are stored times (shared.times)."""

    at: str
    request_id: str
    actor_her_id: str
    actor_kind: str
    actor_hpr: str | None
    patient_key: str | None
    call: str
    outcome: str
    basis: str
    purpose: str
    emergency_reason: str | None = None
    emergency_text: str | None = None
    #: The caller's organisation number (added later: see row_hash).
    actor_orgnr: str | None = None


ENTRY_FIELDS = Entry._fields


def row_hash(prev_hash: str, chain: str, seq: int, entry: Entry) -> str:
    """The row's hash: over the previous row's hash, its chain and place, and every field.
    `actor_orgnr` came later: it is hashed (last) only when set, so a row without one hashes
    as rows did before it existed and the log's older rows verify unchanged; a row with one
    covers it (removing or changing it breaks the hash)."""
    fields = list(entry) if entry.actor_orgnr is not None else list(entry[:-1])
    payload = json.dumps([prev_hash, chain, seq, *fields], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _chain_lock(chain: str) -> int:
    """The chain's advisory lock key (PostgreSQL's keys are signed 64-bit)."""
    digest = hashlib.sha256(f"{_CHAIN_LOCK}:{chain}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def migrate(engine: Engine) -> None:
    sql.migrate(engine, MIGRATIONS, VERSION_TABLE)


#: The columns an append writes, in order.
_COLUMNS = ("chain", "seq", *ENTRY_FIELDS, "prev_hash", "hash")


def _statements(dialect: str) -> tuple[str, str, str, str]:
    """The append's four statements in the driver's own parameter style. Written once, run
    straight on the driver: a call's audit is on the hot path of every call."""
    p = "?" if dialect == "sqlite" else "%s"
    return (
        f"SELECT seq, hash FROM audit_head WHERE chain = {p}",
        f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES ({', '.join([p] * len(_COLUMNS))})",
        f"INSERT INTO audit_head (chain, seq, hash) VALUES ({p}, {p}, {p})",
        f"UPDATE audit_head SET seq = {p}, hash = {p} WHERE chain = {p}",
    )


Head = tuple[int, str]  # a chain's last sequence number and hash

#: How long a writer waits for another process's write to the SQLite file, at most.
_LOCK_WAIT = 30.0


def _begin_immediate(cursor: Any) -> None:
    """Take the SQLite file's write lock, trying again in steps of a fraction of a
    millisecond (the writer's connection has no busy timeout). SQLite's own busy handler
    sleeps 1, 2, 5, 10 ms... between tries, while another process's audit commit holds the
    lock for a tenth of a millisecond: every service's calls waited whole milliseconds for
    each other's (a seventh of the throughput)."""
    deadline = time.monotonic() + _LOCK_WAIT
    pause = 0.0001
    while True:
        try:
            cursor.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.002)


def append(
    engine: Engine,
    chain: str,
    entries: Sequence[Entry],
    head: Head | None = None,
    connection: Any = None,
) -> Head:
    """Chain and store `entries` at the end of `chain`, in one transaction; returns the
    chain's new head.

    A chain has one writer at a time. `head`: the writer owns the chain and knows its head
    (an AuditLog's own chain), so it is neither locked nor read. Otherwise the head is read
    under the chain's lock: SQLite `BEGIN IMMEDIATE` (the whole file), PostgreSQL the chain's
    advisory lock, held until the commit. `connection`: the writer's own driver connection
    (SQLite: in autocommit mode, no busy timeout); by default one from the engine's pool."""
    dialect = engine.dialect.name
    head_sql, insert_sql, new_head_sql, move_head_sql = _statements(dialect)
    pooled = connection is None
    if pooled:
        connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        if dialect == "sqlite":
            if pooled:
                cursor.execute("BEGIN IMMEDIATE")  # the pool's connection waits as it is set
            else:
                _begin_immediate(cursor)
        elif head is None:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_chain_lock(chain),))
        try:
            if head is None:
                cursor.execute(head_sql, (chain,))
                found = cursor.fetchone()
                head = (int(found[0]), found[1]) if found else (0, GENESIS)
            seq, prev = head
            rows = []
            for entry in entries:
                seq += 1
                digest = row_hash(prev, chain, seq, entry)
                rows.append((chain, seq, *entry, prev, digest))
                prev = digest
            cursor.executemany(insert_sql, rows)
            if head[0] == 0:
                cursor.execute(new_head_sql, (chain, seq, prev))
            else:
                cursor.execute(move_head_sql, (seq, prev, chain))
        except BaseException:
            if dialect == "sqlite":
                cursor.execute("ROLLBACK")
            else:
                connection.rollback()
            raise
        if dialect == "sqlite":
            cursor.execute("COMMIT")
        else:
            connection.commit()
        cursor.close()
    finally:
        if pooled:
            connection.close()
    return seq, prev


class AuditLog:
    """A process's writer: it writes a chain of its own (`<service>-<random>`, begun when the
    process starts), so it never waits for another writer's lock nor reads its head from the
    database. `record` queues a call's rows and returns once they are committed, together with
    whatever other calls queued meanwhile (one transaction per batch)."""

    def __init__(self, engine: Engine, service: str, max_batch: int = 1000) -> None:
        self.engine = engine
        self.chain = f"{service}-{os.urandom(6).hex()}"
        self._head: Head = (0, GENESIS)
        self._connection: Any = None  # the writer's own, opened at the first write
        self._writer = GroupWriter(self._append, max_batch, size=len)

    def _open(self) -> Any:
        """The writer's own driver connection: one writer at a time uses it (the group
        writer's leader), so it skips the pool; SQLite's in autocommit mode, no busy timeout
        (`_begin_immediate` waits)."""
        if self._connection is None:
            url = self.engine.url
            connection: Any
            if self.engine.dialect.name == "sqlite":
                connection = sqlite3.connect(
                    url.database or ":memory:", isolation_level=None, check_same_thread=False
                )
                connection.execute("PRAGMA busy_timeout = 0")
                connection.execute("PRAGMA synchronous = NORMAL")
            else:
                connection = psycopg.connect(
                    url.render_as_string(hide_password=False).replace("+psycopg", "")
                )
            self._connection = connection
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def record(self, entries: Sequence[Entry]) -> None:
        """Commit the rows; raises when the audit database cannot take them (the call then
        fails: nothing is answered that is not on record)."""
        if entries:
            self._writer.submit(entries)

    def _append(self, batch: list[Sequence[Entry]]) -> None:
        try:
            rows = [entry for entries in batch for entry in entries]
            self._head = append(self.engine, self.chain, rows, self._head, self._open())
        except Exception as exc:
            log.error("audit rows not written: %s", type(exc).__name__)
            self.close()  # a broken connection is opened again by the next write
            raise


# --- reading ---------------------------------------------------------------------------------


def emergency_grant(
    engine: Engine, patient_key: str, her_id: str, hpr: str, now: datetime, hours: timedelta
) -> tuple[str, str | None, str | None] | None:
    """The newest emergency access this person of this organisation was granted for the
    patient within `hours` before `now` (at, reason, justification), or None."""
    a = audit_log
    query = (
        sa.select(a.c.at, a.c.emergency_reason, a.c.emergency_text)
        .where(
            a.c.patient_key == patient_key,
            a.c.actor_her_id == her_id,
            a.c.actor_hpr == hpr,
            a.c.call == EMERGENCY_CALL,
            a.c.outcome == "OK",
            a.c.at > utc_iso(now - hours),
        )
        .order_by(a.c.id.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return (row.at, row.emergency_reason, row.emergency_text) if row else None


def accesses(engine: Engine, patient_key: str, limit: int, before: int | None) -> list[sa.Row]:  # type: ignore[type-arg]
    """The patient's rows, newest first, `limit` of them written before row id `before`."""
    a = audit_log
    query = sa.select(a).where(a.c.patient_key == patient_key)
    if before is not None:
        query = query.where(a.c.id < before)
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(a.c.id.desc()).limit(limit)))


def emergency_accesses(
    engine: Engine, her_id: str, since: datetime, limit: int, before: int | None
) -> list[tuple[sa.Row, int]]:  # type: ignore[type-arg]
    """The organisation's emergency grants since `since`, newest first, each with how many
    calls were made on it (the request included)."""
    a = audit_log
    query = sa.select(a).where(
        a.c.actor_her_id == her_id,
        _IS_EMERGENCY_GRANT,  # as the partial index says it, so the index is used
        a.c.outcome == "OK",
        a.c.at >= utc_iso(since),
    )
    if before is not None:
        query = query.where(a.c.id < before)
    found = []
    with engine.connect() as conn:
        grants = list(conn.execute(query.order_by(a.c.id.desc()).limit(limit)))
        for grant in grants:
            reads = conn.execute(
                sa.select(sa.func.count())
                .select_from(a)
                .where(
                    a.c.patient_key == grant.patient_key,
                    a.c.actor_her_id == her_id,
                    a.c.actor_hpr == grant.actor_hpr,
                    a.c.basis == "EMERGENCY",
                    a.c.id >= grant.id,
                )
            ).scalar_one()
            found.append((grant, int(reads)))
    return found


# --- verifying -------------------------------------------------------------------------------


def verify(engine: Engine, page: int = 5000) -> list[str]:
    """Recompute every chain from its first row, in one pass over the log in the order it was
    written; every problem found (empty: intact). A changed row breaks its own hash; a removed
    one leaves a gap in its chain's sequence and breaks the next row's link; a removed tail
    disagrees with the chain's head; an added row repeats or skips a place."""
    problems: list[str] = []
    state: dict[str, tuple[int, str]] = {}  # chain → (last place, last hash)
    last_id = -1
    a = audit_log
    with engine.connect() as conn:
        heads = {row.chain: row for row in conn.execute(sa.select(audit_head))}
        while True:
            query = sa.select(a).where(a.c.id > last_id).order_by(a.c.id).limit(page)
            rows = list(conn.execute(query))
            for row in rows:
                chain, seq = row.chain, int(row.seq)
                last, prev = state.get(chain, (0, GENESIS))
                if seq != last + 1:
                    if seq <= last:
                        problems.append(f"{chain}: row {seq} comes again after row {last}")
                    else:
                        problems.append(f"{chain}: rows {last + 1}–{seq - 1} are missing")
                if row.prev_hash != prev:
                    problems.append(f"{chain}: row {seq} does not link to the row before it")
                entry = Entry(*(getattr(row, name) for name in ENTRY_FIELDS))
                if row_hash(row.prev_hash, chain, seq, entry) != row.hash:
                    problems.append(f"{chain}: row {seq} was changed (its hash does not match)")
                state[chain] = (seq, row.hash)
                last_id = row.id
            if len(rows) < page:
                break
    for chain in sorted(set(state) | set(heads)):
        last, prev = state.get(chain, (0, GENESIS))
        head = heads.get(chain)
        if head is None:
            problems.append(f"{chain}: the head row is missing")
        elif int(head.seq) != last or head.hash != prev:
            problems.append(
                f"{chain}: the log ends at row {last} but the head says {int(head.seq)}"
            )
    return problems
