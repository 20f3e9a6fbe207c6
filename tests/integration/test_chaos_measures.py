"""The fault run's measures see what they count (bench/chaos.py): a timeline entry folded in
twice is a duplicate, and a row missing from or added to one read model is a difference from
the other. Real read models (SQLite, migrated as in production)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from bench import chaos
from services.pathway import migrate
from services.pathway import readmodel as rm
from tests.support import make_fnr

EVENT = {
    "event_id": "r-1:1",
    "patient_key": f"fnr|{make_fnr(1, 1, 80, 123)}",
    "source": "referrals",
    "event_type": "ReferralSent",
    "aggregate_id": "r-1",
    "aggregate_version": 1,
    "occurred_at": "2026-11-29T10:00:00+00:00",
    "recorded_at": "2026-11-29T10:00:01+00:00",
    "envelope": "{}",
}


def entry(position: int) -> dict[str, object]:
    return {
        "patient_key": EVENT["patient_key"],
        "position": position,
        "event_id": EVENT["event_id"],
        "event_type": EVENT["event_type"],
        "source": EVENT["source"],
        "level": "INFO",
        "actor_her_id": "8134021",
        "actor_hpr": None,
        "occurred_at": EVENT["occurred_at"],
        "recorded_at": EVENT["recorded_at"],
        "aggregate_id": EVENT["aggregate_id"],
        "summary": "Henvisning sendt",
    }


def read_model(path: Path) -> str:
    url = f"sqlite:///{path}"
    engine = rm.create_engine(url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(rm.events), [EVENT])
        conn.execute(sa.insert(rm.timeline), [entry(0)])
    engine.dispose()
    return url


def test_duplicates_and_differences_are_counted(tmp_path: Path) -> None:
    live, rebuilt = read_model(tmp_path / "live.sqlite"), read_model(tmp_path / "rebuilt.sqlite")
    assert chaos.timeline_duplicates(live) == 0
    assert chaos.rows_differing(live, rebuilt) == 0
    assert chaos.projected_ids(live) == {"r-1:1"}

    engine = rm.create_engine(live)
    with engine.begin() as conn:
        conn.execute(sa.insert(rm.timeline), [entry(1)])  # the same event folded in twice
    assert chaos.timeline_duplicates(live) == 1
    assert chaos.rows_differing(live, rebuilt) == 1

    with engine.begin() as conn:
        conn.execute(sa.delete(rm.events))  # and an event lost
    engine.dispose()
    assert chaos.rows_differing(live, rebuilt) == 2
    assert chaos.projected_ids(live) == set()
