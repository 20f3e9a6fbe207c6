"""Rebuild the read model from the services' own event stores.

The events are read straight from each store's notification log and mapped to envelopes by
the same code the relays use, then projected exactly as live messages are; the result is the
same read model (the audit log of reads is kept, it is not derived from events).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.engine import Engine

from services.pathway import readmodel as rm
from services.pathway.projector import project
from shared.outbox import read_envelopes
from shared.store import CarepathApplication


def rebuild(engine: Engine, stores: Mapping[str, CarepathApplication], batch: int = 2000) -> int:
    """Clear the event-derived tables and replay every store; returns events projected."""
    total = 0
    with engine.begin() as conn:
        for table in (*rm.DERIVED, rm.events):
            conn.execute(table.delete())
        for source, app in sorted(stores.items()):
            position = 0
            while True:
                read = read_envelopes(source, app, position, batch)
                if not read.read:
                    break
                position = read.position
                project(conn, read.envelopes)
                total += len(read.envelopes)
    return total
