"""Rebuild the read model from the services' own event stores.

The events are read straight from each store's notification log, in pages of `PAGE`, and
mapped to envelopes by the same code the relays use; they are kept in memory by patient
(deduplicated on event_id, as the projector deduplicates), each patient is folded once from
all of their events (the fold takes them in any order: `folding.pathway.replay`), and every
row is written by executemany, table by table, `PATIENTS` patients at a time, all in one
transaction. The result is the same read model as the live projector's (the audit log of
reads is kept, it is not derived from events).

Why this shape (bench/rebuild.py, docs/operations.md): storing every event first and then
reading each patient's events back from `pathway_events` to fold them cost a JSON parse and a
validation per event on top of the write; folding from the envelopes just read does not.
On SQLite the rebuild's own connection takes a larger page cache and keeps its temporary
B-trees in memory (connection settings, not the file's: the live readers are unaffected); the
one commit at the end is the rebuild's only disk sync.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine

from services.pathway import readmodel as rm
from services.pathway.projector import event_rows, refold_directory, replayed_writes
from shared import sql
from shared.events import Envelope
from shared.outbox import iter_batches
from shared.store import CarepathApplication

#: Notifications read from a store at a time.
PAGE = 10_000
#: Patients folded and written at a time (their rows are held in memory until written).
PATIENTS = 2_000
#: SQLite settings of the rebuild's own connection: a page cache of 256 MiB (negative: KiB),
#: temporary B-trees (sorts, index builds) in memory.
SQLITE_REBUILD = ("PRAGMA cache_size = -262144", "PRAGMA temp_store = MEMORY")


def read_all(
    stores: Mapping[str, CarepathApplication], page: int = PAGE
) -> dict[str, list[Envelope]]:
    """Every published event of every store, by patient key, each event once."""
    by_patient: dict[str, list[Envelope]] = {}
    seen: set[str] = set()
    for source, app in sorted(stores.items()):
        for envelopes in iter_batches(source, app, page):
            for e in envelopes:
                if e.event_id in seen:
                    continue
                seen.add(e.event_id)
                by_patient.setdefault(rm.patient_key(e.patient), []).append(e)
    return by_patient


def _chunks(keys: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(keys), size):
        yield keys[i : i + size]


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector off while the rebuild runs: every envelope it reads stays
    alive until its patient is folded, and each full collection walks all of them again (with
    the collector on, a rebuild of 100,000 events spent a third of its CPU there). Reference
    counting still frees what the rebuild lets go of; the collector is on again after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def rebuild(
    engine: Engine, stores: Mapping[str, CarepathApplication], patients: int = PATIENTS
) -> int:
    """Clear the event-derived tables, then store every event of every store and fold each
    patient once from them; returns the events stored."""
    with _no_cycle_collection():
        return _rebuild(engine, stores, patients)


def _rebuild(engine: Engine, stores: Mapping[str, CarepathApplication], patients: int) -> int:
    by_patient = read_all(stores)
    total = 0
    with engine.begin() as conn:
        _tune(conn)
        for table in (*rm.DERIVED, rm.DIRECTORY, rm.events):
            conn.execute(table.delete())
        directory = by_patient.pop(rm.DIRECTORY_KEY, [])
        if directory:
            refold_directory(conn, directory)
        total += _store(conn, directory)
        for keys in _chunks(sorted(by_patient), patients):
            histories = {key: by_patient.pop(key) for key in keys}
            total += _store(conn, [e for key in keys for e in histories[key]])
            replayed_writes(histories).write(conn, fresh=True)
    return total


def _store(conn: Connection, envelopes: Sequence[Envelope]) -> int:
    sql.bulk_insert(conn, rm.events, event_rows(envelopes))
    return len(envelopes)


def _tune(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        for pragma in SQLITE_REBUILD:
            conn.exec_driver_sql(pragma)
