"""Finding open tasks whose deadline has passed and announcing each breach once.

A breach is identified by the task and its due time, so a task whose deadline moves (e.g. a
forwarded referral waits on a new hospital) can breach again. Announce first, record after:
a crash in between repeats the announcement, which subscribers drop on its stable event_id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from services.pathway import readmodel as rm
from services.pathway import views
from shared.events import Envelope
from shared.events.pathway import DeadlineBreached, WaitingOn
from shared.times import utc_iso

#: The projector's own organisation-less actor for events it derives.
SYSTEM_ACTOR = {"her_id": "", "org_kind": "SYSTEM"}


def breach_envelope(row: Any, now: datetime) -> Envelope:
    return Envelope(
        event_id=f"{row['task_id']}:breached:{row['due']}",
        aggregate_id=row["aggregate_id"],
        aggregate_version=0,
        patient={"system": row["system"], "value": row["value"]},
        occurred_at=row["due"],
        recorded_at=utc_iso(now),
        actor=dict(SYSTEM_ACTOR),
        correlation_id=row["aggregate_id"],
        causation_id=row["task_id"],
        data=DeadlineBreached(
            task_id=row["task_id"],
            kind=row["kind"],
            description=row["description"],
            waiting_on=WaitingOn(her_id=row["waiting_on_her_id"], kind=row["waiting_on_kind"]),
            since=row["since"],
            due=row["due"],
        ),
    )


def announce_breaches(
    engine: Engine, publish: Callable[[list[Envelope]], None], now: datetime | None = None
) -> int:
    """Publish DeadlineBreached for every breach not yet announced (one batch, one confirm);
    returns how many."""
    now = now or datetime.now(UTC)
    rows = views.unannounced_breaches(engine, now)
    if rows:
        publish([breach_envelope(row, now) for row in rows])
        with engine.begin() as conn:
            conn.execute(
                rm.breaches.insert(),
                [
                    {"task_id": r["task_id"], "due": r["due"], "announced_at": utc_iso(now)}
                    for r in rows
                ],
            )
    return len(rows)
