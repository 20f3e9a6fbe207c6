"""The audit log: every call of every service, append-only and hash-chained, in a database of
its own (not the rebuildable read model: it is not derived from events and must outlive any
rebuild).

Each row says when, which request, who (organisation, kind, HPR), which patient, which call,
its outcome (the gRPC status), the access basis, the coded purpose and, for akuttilgang, the
reason. Row n stores the hash of row n-1 and its own hash over both; `audit_head` holds the last
row's sequence number and hash. `verify` recomputes the chain and names every changed, removed
or added row. Triggers refuse UPDATE and DELETE on the rows.

Writes are grouped: each process has one committer thread that writes what its calls queued
in one transaction (the chain needs one writer at a time: SQLite `BEGIN IMMEDIATE`, PostgreSQL
an advisory lock), and a call returns only after its rows are committed — a read is never
answered before it is on record.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shared import sql
from shared.batching import GroupWriter
from shared.times import utc_iso

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "audit_alembic_version"
#: The advisory lock that makes one writer at a time extend the chain (PostgreSQL).
_CHAIN_LOCK = 0x61756469
GENESIS = "0" * 64
EMERGENCY_CALL = "AccessService/RequestEmergencyAccess"

metadata = sa.MetaData()
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
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
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)


@dataclass(frozen=True, slots=True)
class Entry:
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


ENTRY_FIELDS = tuple(f.name for f in fields(Entry))


def row_hash(prev_hash: str, seq: int, entry: Entry) -> str:
    """The row's hash: over the previous row's hash, its sequence number and every field."""
    payload = json.dumps([prev_hash, seq, *astuple(entry)], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def migrate(engine: Engine) -> None:
    sql.migrate(engine, MIGRATIONS, VERSION_TABLE)


@contextmanager
def _chain_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the right to extend the chain until it commits."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
        else:
            with conn.begin():
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CHAIN_LOCK)))
                yield conn


def append(engine: Engine, entries: Sequence[Entry]) -> int:
    """Chain and store `entries` in one transaction; returns the last sequence number."""
    with _chain_transaction(engine) as conn:
        head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).first()
        seq, prev = (int(head.seq), head.hash) if head else (0, GENESIS)
        rows = []
        for entry in entries:
            seq += 1
            digest = row_hash(prev, seq, entry)
            rows.append(
                {
                    "seq": seq,
                    **dict(zip(ENTRY_FIELDS, astuple(entry), strict=True)),
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            prev = digest
        conn.execute(audit_log.insert(), rows)
        if head is None:
            conn.execute(audit_head.insert().values(id=1, seq=seq, hash=prev))
        else:
            conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=seq, hash=prev))
    return seq


class AuditLog:
    """A process's writer: `record` queues a call's rows and returns once they are committed,
    together with whatever other calls queued meanwhile (one transaction per batch)."""

    def __init__(self, engine: Engine, max_batch: int = 1000) -> None:
        self.engine = engine
        self._writer = GroupWriter(self._append, "audit-log", max_batch, size=len)

    def record(self, entries: Sequence[Entry]) -> None:
        """Commit the rows; raises when the audit database cannot take them (the call then
        fails: nothing is answered that is not on record)."""
        if entries:
            self._writer.submit(entries)

    def close(self) -> None:
        self._writer.close()

    def _append(self, batch: list[Sequence[Entry]]) -> None:
        try:
            append(self.engine, [entry for entries in batch for entry in entries])
        except Exception as exc:
            log.error("audit rows not written: %s", type(exc).__name__)
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
        .order_by(a.c.seq.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return (row.at, row.emergency_reason, row.emergency_text) if row else None


def accesses(engine: Engine, patient_key: str, limit: int, before: int | None) -> list[sa.Row]:  # type: ignore[type-arg]
    """The patient's rows, newest first, `limit` of them before sequence number `before`."""
    a = audit_log
    query = sa.select(a).where(a.c.patient_key == patient_key)
    if before is not None:
        query = query.where(a.c.seq < before)
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(a.c.seq.desc()).limit(limit)))


def emergency_accesses(
    engine: Engine, her_id: str, since: datetime, limit: int, before: int | None
) -> list[tuple[sa.Row, int]]:  # type: ignore[type-arg]
    """The organisation's emergency grants since `since`, newest first, each with how many
    calls were made on it (the request included)."""
    a = audit_log
    query = sa.select(a).where(
        a.c.actor_her_id == her_id,
        a.c.call == EMERGENCY_CALL,
        a.c.outcome == "OK",
        a.c.at >= utc_iso(since),
    )
    if before is not None:
        query = query.where(a.c.seq < before)
    found = []
    with engine.connect() as conn:
        grants = list(conn.execute(query.order_by(a.c.seq.desc()).limit(limit)))
        for grant in grants:
            reads = conn.execute(
                sa.select(sa.func.count())
                .select_from(a)
                .where(
                    a.c.patient_key == grant.patient_key,
                    a.c.actor_her_id == her_id,
                    a.c.actor_hpr == grant.actor_hpr,
                    a.c.basis == "EMERGENCY",
                    a.c.seq >= grant.seq,
                )
            ).scalar_one()
            found.append((grant, int(reads)))
    return found


# --- verifying -------------------------------------------------------------------------------


def verify(engine: Engine, page: int = 5000) -> list[str]:
    """Recompute the chain from the first row; every problem found, in order (empty: intact).
    A changed row breaks its own hash; a removed one leaves a gap in the sequence and breaks
    the next row's link; a removed tail disagrees with the head."""
    problems: list[str] = []
    prev, expected, last = GENESIS, 1, 0
    with engine.connect() as conn:
        while True:
            rows = list(
                conn.execute(
                    sa.select(audit_log)
                    .where(audit_log.c.seq > last)
                    .order_by(audit_log.c.seq)
                    .limit(page)
                )
            )
            for row in rows:
                seq = int(row.seq)
                if seq != expected:
                    problems.append(f"rows {expected}–{seq - 1} are missing")
                if row.prev_hash != prev:
                    problems.append(f"row {seq} does not link to the row before it")
                entry = Entry(*(getattr(row, name) for name in ENTRY_FIELDS))
                if row_hash(row.prev_hash, seq, entry) != row.hash:
                    problems.append(f"row {seq} was changed (its hash does not match)")
                prev, expected, last = row.hash, seq + 1, seq
            if len(rows) < page:
                break
        head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).first()
    if head is None:
        if last:
            problems.append("the head row is missing")
    elif int(head.seq) != last or head.hash != prev:
        problems.append(f"the log ends at row {last} but the head says {int(head.seq)}")
    return problems
