"""carepath's stream of public events, as the vendor delivery has seen them: every event a
vendor may receive (wanted by a subscription then or not; never a patient's blocks), each once,
with its position — a number given in the order the delivery first took the event, stable
for good (a redelivered or replayed event keeps its first position), so a vendor can name
"the last event I have" and a later stream (gRPC, catch-up from a position) can replay from
here, a subscription created later included. Stored beside the subscriptions, in the streams
service's own database.

One writer: the delivery queue is single-active-consumer (infra/rabbitmq/definitions.json),
so positions are handed out in commit order.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shared.events import Envelope
from shared.sql import create_tables
from shared.times import utc_iso

metadata = sa.MetaData()

stream_events = sa.Table(
    "stream_events",
    metadata,
    sa.Column("position", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("event_id", sa.String(200), nullable=False, unique=True),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("patient_key", sa.String(120), nullable=True),
    # shared.times.utc_iso (sortable as text: a stream from a time compares it).
    sa.Column("recorded_at", sa.String(40), nullable=False),
    # The public envelope as checked (shared.events), not yet minimised for anyone.
    sa.Column("envelope", sa.Text, nullable=False),
)  # fmt: skip


def migrate(engine: Engine) -> None:
    create_tables(metadata, engine)


def append(engine: Engine, envelopes: Sequence[Envelope]) -> dict[str, int]:
    """Give each event its position (a new one only to an event not seen before), in one
    transaction; event id → position."""
    ids = list(dict.fromkeys(e.event_id for e in envelopes))
    if not ids:
        return {}
    t = stream_events
    with engine.begin() as conn:
        known = _positions(conn, ids)
        new = {e.event_id: e for e in envelopes if e.event_id not in known}
        if new:
            conn.execute(
                t.insert(),
                [
                    {
                        "event_id": e.event_id,
                        "source": e.source,
                        "event_type": e.event_type,
                        "patient_key": (
                            f"{e.patient['system']}|{e.patient['value']}" if e.patient else None
                        ),
                        "recorded_at": utc_iso(e.recorded_at),
                        "envelope": e.to_json().decode(),
                    }
                    for e in new.values()
                ],
            )
            known.update(_positions(conn, list(new)))
    return known


def _positions(conn: sa.Connection, ids: list[str]) -> dict[str, int]:
    t = stream_events
    found: dict[str, int] = {}
    for i in range(0, len(ids), 500):
        rows = conn.execute(
            sa.select(t.c.event_id, t.c.position).where(t.c.event_id.in_(ids[i : i + 500]))
        )
        found.update({event_id: int(position) for event_id, position in rows})
    return found


def head(engine: Engine) -> int:
    """The newest position (0: none yet)."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(stream_events.c.position))).scalar() or 0)


def page(engine: Engine, after: int, limit: int) -> list[tuple[int, str]]:
    """At most `limit` events after position `after`, in position order: (position, the
    stored envelope's JSON)."""
    t = stream_events
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.position, t.c.envelope)
            .where(t.c.position > after)
            .order_by(t.c.position)
            .limit(limit)
        )
        return [(int(position), envelope) for position, envelope in rows]


def before_time(engine: Engine, recorded_at: str) -> int:
    """The position just before the first event recorded at or after `recorded_at` (a stored
    time, shared.times.utc_iso): a stream from that time begins after it."""
    t = stream_events
    with engine.connect() as conn:
        first = conn.execute(
            sa.select(sa.func.min(t.c.position)).where(t.c.recorded_at >= recorded_at)
        ).scalar()
    if first is None:
        return head(engine)
    return int(first) - 1
