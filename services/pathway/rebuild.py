"""Rebuild the read model from the services' own event stores.

The events are read straight from each store's notification log and mapped to envelopes by
the same code the relays use, then projected exactly as live messages are; the result is the
same read model (the audit log of reads is kept, it is not derived from events).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.engine import Engine

from services.pathway import readmodel as rm
from services.pathway.projector import refold, store_events
from shared.outbox import iter_batches
from shared.store import CarepathApplication


def rebuild(engine: Engine, stores: Mapping[str, CarepathApplication], batch: int = 2000) -> int:
    """Clear the event-derived tables, store every event of every store, then fold each
    patient once; returns the events read."""
    total = 0
    touched: set[str] = set()
    with engine.begin() as conn:
        for table in (*rm.DERIVED, rm.DIRECTORY, rm.events):
            conn.execute(table.delete())
        for source, app in sorted(stores.items()):
            for envelopes in iter_batches(source, app, batch):
                touched |= set(store_events(conn, envelopes))
                total += len(envelopes)
        keys = sorted(touched)
        for i in range(0, len(keys), 500):
            refold(conn, keys[i : i + 500])
    return total
